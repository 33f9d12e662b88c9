"""Real SDXL and FLUX.1 training runs through `kohya-plan launch` (sd-scripts on the CPU, the
tiny lab models of tests/sdlab_families.py, built once and cached).

Each run checks what a user would: the run succeeds; the steps `check` counted are the steps
the log announced and the bar reached; the LoRA files hold exactly the parameters `check`
predicted (per-rank count × rank + one alpha per module, 2 bytes each in bf16, after the
safetensors header); the loss per epoch from the log equals TensorBoard's; the family's own
TensorBoard tags are there. They print wall time and the peak RSS of the trainer's processes.

Skipped with the reason where sd-scripts, its Python or the RAM (~11-15 GB) is missing; the
models are built on first use (SDXL ~1 min, 5.4 GB; FLUX.1 ~1.5 min, 11 GB of disk).
"""

from __future__ import annotations

import json
import math
import struct
import time
from pathlib import Path
from typing import Any

import pytest
import sdlab
import sdlab_families
from helpers import base_plan, make_images, write_plan

from kohya_plan.trainlog.events import BATCHES_PER_EPOCH, TOTAL_STEPS
from kohya_plan.trainlog.replay import replay_file
from kohya_plan.trainlog.tensorboard import read_scalars

NEED_GIB = 18.0  # the trainer peaks at 11-15 GiB RSS; the test and the machine need the rest


def _ram_reason() -> str | None:
    import psutil

    total = psutil.virtual_memory().total / 2**30
    if total < NEED_GIB:
        return f"needs ~{NEED_GIB:.0f} GiB of RAM for the tiny SDXL/FLUX.1 runs, found {total:.1f}"
    return None


SKIP = sdlab.skip_reason() or _ram_reason()
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(SKIP is not None, reason=str(SKIP))]


def _header_bytes(path: Path) -> int:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
    return 8 + length


def _launch(run_cli: Any, plan: Path) -> tuple[dict[str, Any], Path, float, int]:
    from kohya_plan.run.usage import PeakUsage

    started = time.monotonic()
    with PeakUsage() as peak:
        result = run_cli("launch", plan, "--plain")
    wall = time.monotonic() - started
    print(result.output)
    assert result.exit_code == 0, result.output
    (run_dir,) = (plan.parent / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    return summary, run_dir, wall, peak.rss_bytes


def _check_run(
    summary: dict[str, Any], run_dir: Path, *, epochs: int, files: set[str], tags: set[str]
) -> dict[str, Any]:
    """What every family run must show; returns the numbers for the printout."""
    check = json.loads((run_dir / "check.json").read_text())
    assert summary["outcome"] == "succeeded"
    # steps: check's count = what sd-scripts announced = what it ran
    state = replay_file(run_dir / "train.log")
    steps = check["steps"]
    assert state.startup[BATCHES_PER_EPOCH] == steps["batches_per_epoch"]
    assert state.startup[TOTAL_STEPS] == steps["total_optimization_steps"]
    assert summary["steps_done"] == summary["steps_total"] == steps["total_optimization_steps"]
    assert (summary["epochs_done"], summary["epochs_total"]) == (epochs, epochs)
    # files: sd-scripts' names; each holds exactly the parameters check predicted
    out = Path(summary["files"][0]["path"]).parent
    written = {Path(f["path"]).name: f for f in summary["files"]}
    assert set(written) == files
    for name, item in written.items():
        path = out / name
        assert item["bytes"] == path.stat().st_size
        assert path.stat().st_size - _header_bytes(path) == check["lora"]["file_bytes"], name
    # loss per epoch: the log's avr_loss = TensorBoard's loss/epoch_average (3 digits shown)
    scalars = read_scalars(run_dir / "logs")
    assert tags <= set(scalars), sorted(scalars)
    tb = dict(scalars["loss/epoch_average"])
    log = {int(k): v for k, v in summary["loss"]["per_epoch_log"].items()}
    assert sorted(log) == sorted(tb) == list(range(1, epochs + 1))
    for epoch, value in log.items():
        assert math.isclose(value, tb[epoch], rel_tol=6e-3), (epoch, value, tb[epoch])
    # the report of the run names the family's script (its exact command)
    report = (run_dir / "report.html").read_text(encoding="utf-8")
    assert check["script"] in report
    return {
        "steps": steps["total_optimization_steps"],
        "batches_per_epoch": steps["batches_per_epoch"],
        "buckets": steps["buckets"],
        "files": {n: f["bytes"] for n, f in written.items()},
        "lora_tensor_bytes": check["lora"]["file_bytes"],
        "loss_per_epoch_log": log,
        "loss_per_epoch_tensorboard": tb,
        "memory_estimate_gib": check["memory"]["peak_gib"],
    }


def _report(name: str, numbers: dict[str, Any], wall: float, rss: int) -> None:
    numbers = {**numbers, "wall_s": round(wall, 1), "peak_rss_gib": round(rss / 2**30, 2)}
    print(f"E2E {name}: " + json.dumps(numbers, default=str))


def test_sdxl_launch_trains_with_32_px_buckets(tmp_path: Path, run_cli: Any) -> None:
    lab = sdlab.lab_cache_dir()
    model = sdlab_families.tiny_sdxl(lab)
    tokenizers = sdlab_families.family_tokenizers(lab)
    # two sizes that fall into 64x64 and 96x32 only with SDXL's 32-px bucket step
    make_images(tmp_path / "data" / "1_testchar", [(64, 64), (64, 64), (96, 32), (96, 32)])
    data = base_plan(
        model={"base": str(model), "family": "sdxl", "tokenizer_cache_dir": str(tokenizers)},
        dataset={
            "resolution": 64,
            "min_bucket_reso": 32,
            "max_bucket_reso": 128,
            "bucket_reso_steps": 32,
        },
        network={"dim": 4, "alpha": 2, "train_unet_only": True},
        optimizer={"type": "AdamW", "scheduler": "constant", "learning_rate": 1e-4},
        training={
            "epochs": 2,
            "mixed_precision": "bf16",
            "full_bf16": True,
            "cache_latents": True,
            "cache_text_encoder_outputs": True,
            "save_every_n_epochs": 1,
            "max_data_loader_n_workers": 0,
        },
        output={"save_precision": "bf16", "name": "sdxllora"},
        launch={"sd_scripts": str(sdlab.sd_scripts_dir()), "python": str(sdlab.sd_python())},
    )
    data["model"].pop("clip_skip")
    data["optimizer"].pop("text_encoder_lr")
    data["optimizer"].pop("unet_lr")
    plan = write_plan(tmp_path, data)
    summary, run_dir, wall, rss = _launch(run_cli, plan)
    numbers = _check_run(
        summary,
        run_dir,
        epochs=2,
        files={"sdxllora-000001.safetensors", "sdxllora.safetensors"},
        tags={"loss/current", "loss/average", "loss/epoch_average", "lr/unet"},
    )
    # 722 U-Net modules, 2,659,840 parameters per rank (sd-scripts' create_network)
    assert numbers["lora_tensor_bytes"] == (2_659_840 * 4 + 722) * 2
    assert [(b["width"], b["height"]) for b in numbers["buckets"]] == [(64, 64), (96, 32)]
    _report("sdxl", numbers, wall, rss)


def _flux_plan(tmp_path: Path) -> Path:
    lab = sdlab.lab_cache_dir()
    files = sdlab_families.tiny_flux(lab)
    tokenizers = sdlab_families.family_tokenizers(lab)
    make_images(tmp_path / "data" / "1_testchar", [(64, 64), (64, 64)])
    data = base_plan(
        model={
            "base": str(files["dit"]),
            "family": "flux",
            "ae": str(files["ae"]),
            "clip_l": str(files["clip_l"]),
            "t5xxl": str(files["t5xxl"]),
            "tokenizer_cache_dir": str(tokenizers),
        },
        dataset={"resolution": 64, "min_bucket_reso": 64, "max_bucket_reso": 128},
        network={"module": "networks.lora_flux", "dim": 4, "alpha": 2, "train_unet_only": True},
        optimizer={"type": "AdamW", "scheduler": "constant", "learning_rate": 1e-4},
        training={
            "epochs": 2,
            "mixed_precision": "bf16",
            "cache_latents": True,
            "cache_text_encoder_outputs": True,
            "save_every_n_epochs": 1,
            "max_data_loader_n_workers": 0,
        },
        flux={
            "timestep_sampling": "shift",
            "discrete_flow_shift": 3.1582,
            "t5xxl_max_token_length": 64,  # T5 caching is ~10 s per caption on 2 cores
        },
        output={"save_precision": "bf16", "name": "fluxlora"},
        launch={"sd_scripts": str(sdlab.sd_scripts_dir()), "python": str(sdlab.sd_python())},
    )
    data["model"].pop("clip_skip")
    data["optimizer"].pop("text_encoder_lr")
    data["optimizer"].pop("unet_lr")
    return write_plan(tmp_path, data)


def test_flux_launch_trains_the_dit(tmp_path: Path, run_cli: Any) -> None:
    plan = _flux_plan(tmp_path)
    checked = run_cli("check", plan, "--json")
    doc = json.loads(checked.stdout)
    assert doc["model"]["shape"]["dit.double"] == doc["model"]["shape"]["dit.single"] == 1
    summary, run_dir, wall, rss = _launch(run_cli, plan)
    numbers = _check_run(
        summary,
        run_dir,
        epochs=2,
        files={"fluxlora-000001.safetensors", "fluxlora.safetensors"},
        tags={"loss/epoch_average", "lr/unet", "norm/avg_grad_norm"},
    )
    # the lab's DiT has 1 double + 1 single block: 13 modules, 141,312 + 55,296 per rank
    assert numbers["lora_tensor_bytes"] == (196_608 * 4 + 13) * 2
    config = (run_dir / "config.toml").read_text()
    assert "guidance_scale = 1.0" in config
    assert 'model_prediction_type = "raw"' in config
    _report("flux", numbers, wall, rss)


def test_flux_lr_find_reads_the_dits_d_lr(tmp_path: Path, run_cli: Any) -> None:
    """lr-find on FLUX.1: DAdaptAdam for a few steps, TensorBoard's lr/d*lr/unet, a new plan
    of the same family that checks clean."""
    plan = _flux_plan(tmp_path)
    started = time.monotonic()
    result = run_cli("lr-find", plan, "--steps", "3", "--plain")
    wall = time.monotonic() - started
    print(result.output)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    found = json.loads((run_dir / "lr-find.json").read_text())
    assert found["searcher"] == "DAdaptAdam"
    points = read_scalars(run_dir / "logs")["lr/d*lr/unet"]
    assert len(points) == 3
    assert found["value"] == points[-1][1]
    from kohya_plan.loading import load_plan

    new = load_plan(Path(found["new_plan"]))
    assert new.model.family == "flux"
    assert new.optimizer.type == "AdamW8bit"
    assert math.isclose(new.optimizer.unet_lr or 0, found["value"], rel_tol=5e-3)
    assert new.optimizer.text_encoder_lr is None  # train_unet_only: no text-encoder LR
    print(f"E2E flux lr-find: value {found['value']:.3g} after 3 steps, wall {wall:.1f} s")
