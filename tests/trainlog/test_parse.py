"""The log parser against the real sd-scripts logs in tests/fixtures/logs (raw bytes, unchanged).

The logs come from real CPU runs of train_network.py (see the research notes, sd-cpu-run.md):
stdout and stderr were captured to separate files, so "merged" below is stdout followed by
stderr, as one pipe would carry them with stdout block-buffered.
"""

from __future__ import annotations

import math
import random
import re
import tracemalloc
from pathlib import Path

import pytest
from helpers import TESTS

from kohya_plan.trainlog.events import (
    CheckpointSaved,
    ChildExit,
    ConfigWritten,
    DatasetLength,
    EpochStart,
    Event,
    Failure,
    ImageFolder,
    LogLine,
    ModelSaved,
    Phase,
    Progress,
    SampleImages,
    StateSaved,
    Warning,
)
from kohya_plan.trainlog.records import LogParser
from kohya_plan.trainlog.replay import parse_log, replay, replay_events

LOGS = TESTS / "fixtures" / "logs"
RUNS = sorted({p.name.split(".")[0] for p in LOGS.glob("*.stderr.txt")})
WORK = "<WORK>/sdlab"  # the placeholder the sanitised logs use for the lab folder


def log(run: str, stream: str) -> bytes:
    return (LOGS / f"{run}.{stream}.txt").read_bytes()


def merged(run: str) -> bytes:
    return log(run, "stdout") + log(run, "stderr")


def of_type(events: list[Event], cls: type) -> list:
    return [e for e in events if isinstance(e, cls)]


def feed_in_chunks(data: bytes, seed: int, largest: int, *, records: bool = False) -> list[Event]:
    rng = random.Random(seed)
    parser = LogParser(records=records)
    events: list[Event] = []
    i = 0
    while i < len(data):
        n = rng.randint(1, largest)
        events += parser.feed(data[i : i + n])
        i += n
    return events + parser.finish()


def messages(data: bytes, *, rich: bool = True) -> list[str]:
    """Log-record messages (rich ones when rich, else the plain lines)."""
    lines = of_type(parse_log(data, records=True), LogLine)
    return [e.message for e in lines if (e.level is not None) == rich]


# -- what a user notices, per run ---------------------------------------------------------

# total steps, steps with a loss, LoRA files written, "model saved.", cause, warnings
CASES: dict[str, tuple[int | None, int, list[str], bool, str | None, list[str]]] = {
    "run0_missing_captions": (2, 2, ["tinylora"], True, None, ["no_captions", "no_reg_images"]),
    "run1_basic": (16, 16, ["tinylora-000001", "tinylora"], True, None, ["no_reg_images"]),
    "run2_dataset_config": (
        6,
        6,
        ["tinylora_ds"],
        True,
        None,
        ["no_reg_images"],
    ),  # said twice, kept once
    "run3_config_file": (
        6,
        6,
        ["tinylora_cfg-step00000003", "tinylora_cfg-step00000006", "tinylora_cfg"],
        True,
        None,
        ["no_reg_images"],
    ),
    "run4_prodigy": (8, 8, ["tinylora_prodigy"], True, None, ["no_reg_images"]),
    "run5_dadapt": (4, 4, ["tinylora_dadapt"], True, None, ["no_reg_images"]),
    "run6_sample": (8, 8, ["tinylora_sample"], True, None, ["no_reg_images"]),
    "run7_fail_model": (None, 0, [], False, "missing_model", ["no_reg_images"]),
    "run8_fail_arg": (None, 0, [], False, "argparse", []),
    "run9_output_config": (None, 0, [], False, None, []),
    "run10_bf16": (2, 2, ["tinylora_bf16"], True, None, ["no_reg_images"]),
    "run11_fp16": (4, 0, [], False, "precision", ["no_reg_images"]),
    "run12_adamw8bit_wide": (3, 3, ["tinylora_8bit"], True, None, ["no_reg_images"]),
    "run13_single_file": (4, 4, ["tinylora_single"], True, None, ["no_reg_images"]),
    "run14_res64": (8, 8, ["tinylora_64"], True, None, ["no_reg_images"]),
    "run15_debug_dataset": (None, 0, [], False, None, ["no_reg_images"]),
    # the trainer's Python without torch (accelerate fails) or without sd-scripts' voluptuous
    "run16_no_torch": (None, 0, [], False, "missing_package", []),
    "run17_no_requirement": (None, 0, [], False, "missing_package", []),
}


def test_every_fixture_has_expectations() -> None:
    assert sorted(CASES) == RUNS


@pytest.mark.parametrize("run", sorted(CASES))
def test_run_summary(run: str) -> None:
    total, steps, files, saved, cause, warnings = CASES[run]
    state = replay(merged(run))
    assert state.total == total
    assert len(state.losses) == steps
    assert all(step in state.losses for step in range(1, steps + 1))
    assert [Path(p).name for p in state.checkpoints] == [f"{f}.safetensors" for f in files]
    assert state.saw_model_saved is saved
    assert (state.cause.kind if state.cause else None) == cause
    if cause is None:
        assert state.failures == []
    assert [w.kind for w in state.warnings] == warnings


@pytest.mark.parametrize("run", RUNS)
def test_streams_alone_and_concatenated_agree(run: str) -> None:
    out, err = log(run, "stdout"), log(run, "stderr")
    assert parse_log(out) + parse_log(err) == parse_log(out + err)
    # The other order (stderr first) loses nothing a summary needs either.
    a, b = replay(out + err), replay(err + out)
    assert (a.startup, a.losses, a.checkpoints, a.failures) == (
        b.startup,
        b.losses,
        b.checkpoints,
        b.failures,
    )


@pytest.mark.parametrize("run", RUNS)
def test_chunking_does_not_change_events(run: str) -> None:
    data = merged(run)
    whole = parse_log(data, records=True)
    assert len(whole) > 0
    for seed in range(3):
        assert feed_in_chunks(data, seed, 4096, records=True) == whole
    # Tiny chunks cut every UTF-8 character, "\r\n" and "\x1b[A" somewhere.
    assert feed_in_chunks(data, 7, 3, records=True) == whole


def test_byte_at_a_time_through_ansi_and_cjk() -> None:
    data = merged("run6_sample")  # has "\x1b[A" (nested sampling bar) and Japanese
    assert b"\x1b[A" in data
    assert feed_in_chunks(data, 0, 1) == parse_log(data)


# -- run1: the basic run ------------------------------------------------------------------


def test_run1_startup_block() -> None:
    state = replay(merged("run1_basic"))
    assert state.startup == {
        "train_images": 8,
        "validation_images": 0,
        "reg_images": 0,
        "batches_per_epoch": 8,
        "epochs": 2,
        "batch_size": 1,
        "grad_accum_steps": 1,
        "total_steps": 16,
    }
    assert state.epochs == 2


def test_run1_checkpoints_and_end() -> None:
    events = parse_log(merged("run1_basic"))
    assert of_type(events, CheckpointSaved) == [
        CheckpointSaved(f"{WORK}/runs/run1_basic/out/tinylora-000001.safetensors"),
        CheckpointSaved(f"{WORK}/runs/run1_basic/out/tinylora.safetensors"),
    ]
    assert of_type(events, EpochStart) == [EpochStart(1, 2), EpochStart(2, 2)]
    assert len(of_type(events, ModelSaved)) == 1
    assert of_type(events, Failure) == []


def test_run1_loss_is_the_last_frame_of_each_step() -> None:
    events = parse_log(log("run1_basic", "stderr"))
    frames = of_type(events, Progress)
    # Step 3 is drawn twice: after update() with the old average, after set_postfix with the new.
    assert [f.avr_loss for f in frames if f.step == 3] == [1.05, 1.09]
    state = replay_events(events)
    assert state.losses[3] == 1.09
    assert state.losses[8] == 1.1
    assert state.losses[16] == 1.05
    assert state.loss_points[0] == (1, 1.06)
    assert [s for s, _ in state.loss_points] == list(range(1, 17))


def test_run1_losses_match_tensorboard() -> None:
    # tqdm shows loss/average with 3 significant digits: the bar and TensorBoard must agree.
    text = (LOGS / "run1_basic.tb-scalars.txt").read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.strip().startswith("scalar loss/average:"))
    tb = {int(s): float(v) for s, v in re.findall(r"(\d+):([\d.]+)", line.split(":", 1)[1])}
    assert len(tb) == 16
    state = replay(log("run1_basic", "stderr"))
    assert state.losses == {step: float(f"{value:.3g}") for step, value in tb.items()}


def test_run1_progress_frame_fields() -> None:
    frames = of_type(parse_log(log("run1_basic", "stderr")), Progress)
    first, second = frames[0], frames[1]
    assert (first.step, first.total, first.elapsed_s, first.remaining_s) == (0, 16, 0.0, None)
    assert (first.rate, first.rate_unit, first.avr_loss, first.postfix) == (None, "it/s", None, {})
    assert (second.step, second.elapsed_s, second.remaining_s) == (1, 4.0, 63.0)
    assert (second.rate, second.rate_unit, second.avr_loss) == (4.26, "s/it", None)
    assert frames[-1] == Progress(16, 16, 60.0, 0.0, 3.76, "s/it", 1.05, {"avr_loss": "1.05"})


def interleaved_run1() -> bytes:
    """run1 as one unbuffered pipe carries it: each print between the frames around it."""
    out, err = log("run1_basic", "stdout"), log("run1_basic", "stderr")
    head_end = out.index(b"epoch 1/2\n") + len(b"epoch 1/2\n")
    mid_end = out.index(b"epoch 2/2\n") + len(b"epoch 2/2\n")
    step9 = err.index(b"\rsteps:  56%")
    saved = err.index(b"2026-11-26 23:04:51 INFO     model saved.")
    return (
        (out[:head_end] + err[:step9] + out[head_end:mid_end] + err[step9:saved])
        + out[mid_end:]
        + err[saved:]
    )


def test_epoch_losses_from_an_interleaved_stream() -> None:
    events = parse_log(interleaved_run1())
    state = replay_events(events)
    # = TensorBoard's loss/epoch_average (1.0956, 1.0524) at 3 significant digits
    assert state.epoch_losses == {1: 1.1, 2: 1.05}
    kinds = [
        (type(e).__name__, getattr(e, "step", None))
        for e in events
        if isinstance(e, (CheckpointSaved, EpochStart, Progress))
    ]
    saved = kinds.index(("CheckpointSaved", None))
    assert kinds[saved - 1] == ("Progress", 8)
    assert kinds[saved + 1 : saved + 3] == [("EpochStart", None), ("Progress", 9)]


# -- failures -----------------------------------------------------------------------------


def test_run7_missing_model_is_the_cause_not_the_launcher() -> None:
    events = parse_log(merged("run7_fail_model"))
    failures = of_type(events, Failure)
    assert [f.kind for f in failures] == ["missing_model"]
    assert failures[0].message.startswith("ValueError: The provided pretrained_model_name_or_path")
    assert f'"{WORK}/models/does-not-exist"' in failures[0].message
    assert failures[0].detail_lines[0].endswith('pipeline_utils.py", line 728, in from_pretrained')
    assert [e.returncode for e in of_type(events, ChildExit)] == [1]
    state = replay_events(events)
    assert state.cause == failures[0]
    assert state.child_returncode == 1


def test_run8_argparse_error_names_the_option() -> None:
    state = replay(merged("run8_fail_arg"))
    assert state.cause is not None
    assert state.cause.kind == "argparse"
    assert state.cause.options == ("--network_dimm",)
    assert state.cause.message == (
        "train_network.py: error: unrecognized arguments: --network_dimm 4"
    )
    assert len(state.failures) == 1
    assert state.child_returncode == 2


def test_run11_fp16_on_the_cpu_keeps_last_frame_and_exception() -> None:
    state = replay(merged("run11_fp16"))
    assert state.cause is not None
    assert state.cause.kind == "precision"  # fp16 without a GPU: the advice says what to use
    assert state.cause.message == (
        "RuntimeError: expected m1 and m2 to have the same dtype, but got: c10::Half != float"
    )
    assert state.cause.detail_lines == (
        'File "<WORK>/sdlab/venv/lib/python3.11/site-packages/torch/nn/modules/linear.py", '
        "line 134, in forward",
        state.cause.message,
    )
    assert state.child_returncode == 1
    assert state.step == 0  # it died before the first optimizer step


def _traceback(*frames_and_exception: str) -> bytes:
    lines = ["Traceback (most recent call last):"]
    for item in frames_and_exception[:-1]:
        lines += [f'  File "{item}", line 1, in f', "    x()"]
    lines.append(frames_and_exception[-1])
    return ("\n".join(lines) + "\n").encode()


CPE = (
    "subprocess.CalledProcessError: Command '['python', 'train_network.py']' "
    "returned non-zero exit status 1."
)


@pytest.mark.parametrize(
    ("exception", "kind"),
    [
        ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB.", "cuda_oom"),
        ("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB", "cuda_oom"),
        (
            "ImportError: No dadaptation / dadaptation がインストールされていないようです",
            "optimizer_missing",
        ),
        ("AssertionError: caption file is empty / キャプションファイルが空です: a.txt", "dataset"),
        ("AssertionError: image too large, but cropping and bucketing are disabled", "dataset"),
        ("ValueError: file not found / ファイルが見つかりません: ds.toml", "dataset"),
        ("voluptuous.error.MultipleInvalid: extra keys not allowed @ data['x']", "dataset"),
        (
            "OSError: model is not a local folder and is not a valid model identifier",
            "missing_model",
        ),
        ("KeyError: 'lora_unet_down'", "traceback"),
        ("ModuleNotFoundError: No module named 'diffusers'", "missing_package"),
        ("ModuleNotFoundError: No module named 'bitsandbytes'", "optimizer_missing"),
        ("ModuleNotFoundError: No module named 'prodigyopt'", "optimizer_missing"),
    ],
)
def test_exception_kinds_under_accelerate(exception: str, kind: str) -> None:
    data = _traceback("train_network.py", exception) + _traceback("accelerate", CPE)
    state = replay(data)
    assert [f.kind for f in state.failures] == [kind]
    assert state.cause is not None
    assert state.cause.message == exception
    assert state.cause.detail_lines == ('File "train_network.py", line 1, in f', exception)
    assert state.child_returncode == 1


def test_chained_traceback_takes_the_specific_cause() -> None:
    data = (
        _traceback("train_util.py", "ModuleNotFoundError: No module named 'bitsandbytes'")
        + b"\nDuring handling of the above exception, another exception occurred:\n\n"
        + _traceback("train_util.py", "ImportError: No bitsandbytes / bitsandbytesがインストール")
    )
    failures = of_type(parse_log(data), Failure)
    assert len(failures) == 1
    assert failures[0].kind == "optimizer_missing"
    assert failures[0].message.startswith("ImportError: No bitsandbytes")
    assert failures[0].detail_lines[1:] == (
        "ModuleNotFoundError: No module named 'bitsandbytes'",
        failures[0].message,
    )


def test_launcher_alone_is_a_failure_with_the_signal() -> None:
    cpe = "subprocess.CalledProcessError: Command '['python']' died with <Signals.SIGKILL: 9>."
    events = parse_log(b"steps:   0%|          | 0/4 [00:00<?, ?it/s]\n" + _traceback("a", cpe))
    assert of_type(events, ChildExit) == [ChildExit(-9, cpe)]
    assert [(f.kind, f.message) for f in of_type(events, Failure)] == [
        ("child_exit", "the trainer was killed by SIGKILL")
    ]


def test_nan_loss_is_a_failure_once() -> None:
    frames = (
        "\rsteps:  25%|██▌       | 1/4 [00:04<00:12,  4.00s/it, avr_loss=1.06]"
        "\rsteps:  50%|█████     | 2/4 [00:08<00:08,  4.00s/it, avr_loss=nan]"
        "\rsteps:  75%|███████▌  | 3/4 [00:12<00:04,  4.00s/it, avr_loss=nan]"
        "\rsteps: 100%|██████████| 4/4 [00:16<00:00,  4.00s/it, avr_loss=inf]\n"
    )
    events = parse_log(frames.encode())
    failures = of_type(events, Failure)
    assert [(f.kind, f.message) for f in failures] == [
        ("nan_loss", "the average loss became nan at step 2")
    ]
    # emitted right after the frame that showed it
    assert events.index(failures[0]) == 2
    state = replay_events(events)
    assert state.losses[1] == 1.06
    assert math.isnan(state.losses[2])
    assert math.isinf(state.losses[4])


# -- warnings, datasets, special runs -----------------------------------------------------


def test_run0_missing_captions_warning_counts_images() -> None:
    warnings = of_type(parse_log(merged("run0_missing_captions")), Warning)
    assert warnings[0].kind == "no_captions"
    assert warnings[0].count == 4
    assert warnings[0].message == (
        "No caption file found for 4 images. Training will continue without captions for these "
        "images. If class token exists, it will be used."
    )
    # the four image paths logged after it are part of it, not warnings of their own
    assert [w.kind for w in warnings] == ["no_captions", "no_reg_images"]


def test_width_80_and_200_give_the_same_messages() -> None:
    narrow = log("run1_basic", "stderr")  # rich at 80 columns: paths cut mid-word
    wide = log("run12_adamw8bit_wide", "stderr")  # COLUMNS=200: one line per message
    folder = ImageFolder(f"{WORK}/data/train/2_testchar", 4)
    assert of_type(parse_log(narrow), ImageFolder) == [folder]
    assert of_type(parse_log(wide), ImageFolder) == [folder]
    a, b = messages(narrow), messages(wide)
    assert len(a) == 41
    # The only differences are the runs' own: the optimizer, and run12 has a single epoch.
    assert a.count("epoch is incremented. current_epoch: 0, epoch: 2") == 2
    a = [m for m in a if m != "epoch is incremented. current_epoch: 0, epoch: 2"]
    assert a.index("use AdamW optimizer | {}") == b.index("use 8-bit AdamW optimizer | {}")
    assert [m for m in a if "AdamW" not in m] == [m for m in b if "AdamW" not in m]


def test_rich_messages_equal_console_log_simple_lines() -> None:
    rich = messages(log("run1_basic", "stderr"))
    simple = set(messages(log("run5_dadapt", "stdout"), rich=False))
    lines = {x.strip() for m in rich for x in m.split("\n") if x.strip()}
    assert sorted(lines - simple) == [
        "epoch is incremented. current_epoch: 0, epoch: 2",
        "use AdamW optimizer | {}",
    ]


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (
            "run1_basic",
            f"load tokenizer from cache: {WORK}/tokenizer_cache/openai_clip-vit-large-patch14",
        ),
        (
            "run3_config_file",
            f"Saving current state to {WORK}/runs/run3_config_file/out/"
            "tinylora_cfg-step00000003-state",
        ),
        (
            "run3_config_file",
            f"save train state to {WORK}/runs/run3_config_file/out/tinylora_cfg-state/"
            "train_state.json at epoch 1 step 6",
        ),
        (
            "run1_basic",
            "number of images (including repeats) / 各bucketの画像枚数（繰り返し回数を含む）",
        ),
        (
            "run15_debug_dataset",
            "`S` for next step, `E` for next epoch no. , Escape for exit. / "
            "Sキーで次のステップ、Eキーで次のエポック、Escキーで中断、終了します",
        ),
        (
            "run0_missing_captions",
            f"{WORK}/data/train/2_testchar/img3.png",
        ),
        (
            "run9_output_config",
            "Saved config file / 設定ファイルを保存しました: "
            f"{WORK}/runs/run9_output_config/written.toml",
        ),
    ],
)
def test_wrapped_messages_are_joined(run: str, expected: str) -> None:
    assert expected in messages(log(run, "stderr"))


def test_multi_line_record_keeps_its_lines() -> None:
    summary = next(
        m for m in messages(log("run1_basic", "stderr")) if m.startswith("[Dataset 0]\n")
    )
    lines = summary.split("\n")
    assert lines[1] == "  batch_size: 1"
    assert f'    image_dir: "{WORK}/data/train/2_testchar"' in lines
    assert "    caption_dropout_every_n_epochs: 0" in lines
    assert lines[-1] == "    caption_extension: .txt"


def test_run5_console_log_simple_has_the_same_structure() -> None:
    simple = replay(merged("run5_dadapt"))  # logging on stdout, no levels, no wrapping
    rich = replay(merged("run12_adamw8bit_wide"))
    assert {k: v for k, v in simple.startup.items() if k != "total_steps"} == {
        k: v for k, v in rich.startup.items() if k != "total_steps"
    }
    assert simple.image_folders == rich.image_folders
    assert [w.kind for w in simple.warnings] == [w.kind for w in rich.warnings]
    assert simple.saw_model_saved
    assert rich.saw_model_saved
    assert (simple.epochs, len(simple.checkpoints), len(simple.losses)) == (1, 1, 4)
    phases = {
        run: {e.name for e in of_type(parse_log(merged(run)), Phase)}
        for run in ("run5_dadapt", "run12_adamw8bit_wide")
    }
    assert phases["run5_dadapt"] == phases["run12_adamw8bit_wide"]
    assert phases["run5_dadapt"] == {
        "preparing dataset",
        "preparing accelerator",
        "loading model",
        "caching latents",
        "creating network",
        "preparing optimizer",
        "training",
    }


def test_run15_debug_dataset_length() -> None:
    events = parse_log(merged("run15_debug_dataset"))
    assert of_type(events, DatasetLength) == [DatasetLength(8)]
    assert of_type(events, Progress) == []  # its "steps: 1 (1/8)" records are not the bar


def test_run6_sample_images() -> None:
    assert of_type(parse_log(merged("run6_sample")), SampleImages) == [
        SampleImages(0),
        SampleImages(8),
    ]


def test_run3_state_folders() -> None:
    assert replay(merged("run3_config_file")).states == [
        f"{WORK}/runs/run3_config_file/out/tinylora_cfg-step00000003-state",
        f"{WORK}/runs/run3_config_file/out/tinylora_cfg-step00000006-state",
        f"{WORK}/runs/run3_config_file/out/tinylora_cfg-state",
    ]
    assert of_type(parse_log(merged("run3_config_file")), StateSaved)[0].path.endswith(
        "tinylora_cfg-step00000003-state"
    )


def test_run2_validation_bars_are_not_progress() -> None:
    frames = of_type(parse_log(merged("run2_dataset_config")), Progress)
    assert {f.total for f in frames} == {6}
    assert all("val_epoch_avg_loss" not in f.postfix for f in frames)


def test_run4_postfix_with_scale_weight_norms() -> None:
    last = of_type(parse_log(log("run4_prodigy", "stderr")), Progress)[-1]
    assert last.postfix == {"Average key norm": "0.00264", "Keys Scaled": "0", "avr_loss": "1.1"}
    assert last.avr_loss == 1.1


def test_run9_output_config() -> None:
    events = parse_log(merged("run9_output_config"))
    assert of_type(events, ConfigWritten) == [
        ConfigWritten(f"{WORK}/runs/run9_output_config/written.toml")
    ]
    assert of_type(events, Failure) == []


@pytest.mark.parametrize(
    ("line", "kind", "count", "name"),
    [
        (
            "ignore directory without repeats / 繰り返し回数のないディレクトリを無視します: cats",
            "ignored_folder",
            None,
            "cats",
        ),
        (
            "ignore subset with image_dir='data/1_x': no images found / 画像が見つからないため",
            "ignored_folder",
            None,
            "data/1_x",
        ),
        ("not directory: data/10_dog", "ignored_folder", None, "data/10_dog"),
        (
            "ignoring the following options because config file is found: train_data_dir, "
            "reg_data_dir / 設定ファイルが利用されるため以下のオプションは無視されます: x",
            "dataset_config_overrides",
            None,
            "train_data_dir, reg_data_dir",
        ),
        (
            "learning rate is too low. If using D-Adaptation or Prodigy, set learning rate "
            "around 1.0 / 学習率が低すぎるようです: lr=0.0001",
            "lr_too_low",
            None,
            None,
        ),
        (
            "some of reg images are not used / 正則化画像の数が多いので、一部使用されない",
            "reg_images_unused",
            None,
            None,
        ),
        ("No caption file found for 12 images. Training will", "no_captions", 12, None),
        ("No prompt file / プロンプトファイルがありません: p.txt", "no_prompt_file", None, "p.txt"),
        ("NaN found in latents, replacing with zeros", "nan_latents", None, None),
    ],
)
def test_simple_mode_warnings(line: str, kind: str, count: int | None, name: str | None) -> None:
    warnings = of_type(parse_log(line.encode() + b"\n"), Warning)
    assert [(w.kind, w.count, w.name) for w in warnings] == [(kind, count, name)]
    assert " / " not in warnings[0].message  # the English half


def _rich(level: str, lines: list[str], source: str, width: int = 80) -> str:
    """One record as rich renders it into a pipe: padded, path on the first line."""
    first = f"{'':20}{level:<8} {lines[0]}"
    out = [first + " " * (width - len(first) - len(source)) + source]
    out += [f"{'':29}{x}".ljust(width) for x in lines[1:]]
    return "\n".join(out) + "\n"


def test_rich_warnings_and_errors() -> None:
    ignored = [
        "ignore directory without repeats",
        "/ 繰り返し回数のないディレクトリを",
        "無視します: foo",
    ]
    no_data = ["No data found. Please verify", "arguments / 画像がありません。"]
    data = (
        "2026-11-26 23:03:41 INFO     Using v1 tokenizer                strategy_sd.py:26\n"
        + _rich("WARNING", ignored, "config_util.py:613")
        + _rich("WARNING", ["something odd happened"], "x.py:1")
        + _rich("ERROR", no_data, "train_network.py:576")
    )
    events = parse_log(data.encode())
    warnings = of_type(events, Warning)
    assert [(w.kind, w.name) for w in warnings] == [
        ("ignored_folder", "foo"),
        ("generic", None),
    ]
    assert warnings[1].message == "something odd happened"
    state = replay_events(events)
    assert state.saw_no_data
    assert state.failures == []


def test_mid_word_wrap_detected_from_padding() -> None:
    # Message column 21 wide: the path fills it exactly, so its next line continues the word;
    # "found directory" ends early, so a space was dropped there.
    source = "train_util.py:2059"
    lines = ["found directory", "/data/train/2_testcha", "r contains 4 image files"]
    data = _rich("INFO", lines, source, width=29 + 21 + 1 + len(source)).encode()
    assert of_type(parse_log(data), ImageFolder) == [ImageFolder("/data/train/2_testchar", 4)]
    # Same text one column wider: nothing was cut, so the lines are joined with spaces.
    data = _rich("INFO", lines, source, width=29 + 22 + 1 + len(source)).encode()
    assert messages(data) == ["found directory /data/train/2_testcha r contains 4 image files"]


def test_rich_error_record_failures() -> None:
    data = _rich(
        "ERROR",
        ["model is not found as a file or", "in Hugging Face, perhaps file", "name is wrong?"],
        "train_util.py:5540",
    ) + _rich("ERROR", ["Invalid user config /"], "config_util.py:375")
    failures = of_type(parse_log(data.encode()), Failure)
    assert [(f.kind, f.message) for f in failures] == [
        (
            "missing_model",
            "model is not found as a file or in Hugging Face, perhaps file name is wrong?",
        ),
        ("dataset", "Invalid user config"),
    ]


# -- live behaviour -----------------------------------------------------------------------


def test_frame_is_reported_before_the_next_one_starts() -> None:
    parser = LogParser()
    frame = "\rsteps:   6%|▋         | 1/16 [00:04<01:03,  4.26s/it, avr_loss=1.06]"
    events = parser.feed(frame.encode())
    assert [(e.step, e.avr_loss) for e in of_type(events, Progress)] == [(1, 1.06)]
    # the "\r" that ends it, and a record glued after it, do not report it again
    rest = parser.feed(b"2026-11-26 23:04:22 INFO     model saved.        train_network.py:1729\n")
    rest += parser.finish()
    assert of_type(rest, Progress) == []
    assert of_type(rest, ModelSaved) == [ModelSaved()]


def test_phase_is_reported_when_its_record_starts() -> None:
    parser = LogParser()
    events = parser.feed(
        _rich("INFO", ["loading model for process 0/1"], "train_util.py:5574").encode()
    )
    assert events == [Phase("loading model")]  # not held until the next line arrives
    assert parser.finish() == []


def test_crlf_line_ends() -> None:
    data = merged("run1_basic")
    assert parse_log(data.replace(b"\n", b"\r\n")) == parse_log(data)


def test_undecodable_bytes_and_endless_line_stay_bounded() -> None:
    parser = LogParser()
    junk = b"\xff\xfe" + "ü".encode() * 32768  # undecodable, and 2 bytes/char once decoded
    tracemalloc.start()
    try:
        for _ in range(512):  # 32 MB without a line end
            assert parser.feed(junk) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024  # the unfinished line is cut at 1 Mi characters
    assert parser.feed(b"\nepoch 1/3\n") == [EpochStart(1, 3)]
    assert parser.finish() == []


@pytest.mark.parametrize(
    "line",
    [
        "/home/user/venv/bin/python3: Error while finding module specification for "
        "'accelerate.commands.launch' (ModuleNotFoundError: No module named 'accelerate')",
        "/usr/bin/python3.11: No module named accelerate.commands.launch",
        "C:\\sd\\venv\\Scripts\\python.exe: No module named accelerate",
    ],
)
def test_python_without_accelerate_is_a_missing_package(line: str) -> None:
    """`python -m accelerate.commands.launch` in an interpreter without accelerate: no
    traceback, exit status 1; the cause is still named."""
    state = replay(line.encode() + b"\n")
    assert state.cause is not None
    assert state.cause.kind == "missing_package"
    assert "accelerate" in state.cause.message


def test_a_line_merely_mentioning_a_module_is_no_failure() -> None:
    state = replay(b"INFO note: No module named 'xformers', using sdpa instead\n")
    assert state.failures == []
