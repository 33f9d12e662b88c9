"""kohya-plan against the real sd-scripts at the pinned commit (skipped where it is missing).

What sd-scripts itself must agree with: the rendered config file parses with its own parser
into known options of the right types, the rendered dataset TOML passes its own sanitizer,
and `check --json` reports exactly the batches per epoch that sd-scripts computes
(`--debug_dataset` prints `Total dataset length (steps)`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import sdlab
from helpers import (
    base_plan,
    flux_stub_files,
    make_images,
    ready_tokenizers,
    write_plan,
    write_sdxl_diffusers,
)

from kohya_plan.planning import check_plan, make_run

pytestmark = [
    pytest.mark.sdscripts,
    pytest.mark.skipif(sdlab.skip_reason() is not None, reason=str(sdlab.skip_reason())),
]

# Runs inside sd-scripts' venv: the family script's parser, config reader and dataset sanitizer.
PROBE = r"""
import importlib, json, sys
from pathlib import Path
sys.path.insert(0, ".")
from library import config_util, train_util
config, dataset = sys.argv[1], sys.argv[2]
script = sys.argv[3] if len(sys.argv) > 3 else "train_network.py"
parser = importlib.import_module(script.removesuffix(".py")).setup_parser()
sys.argv = [script, "--config_file", config, "--dataset_config", dataset]
args = parser.parse_args()
train_util.verify_command_line_training_args(args)
args = train_util.read_config_from_file(args, parser)
known = set(vars(parser.parse_args([])))
import toml
flat = {k: v for t in toml.load(config).values() for k, v in t.items()}
unknown = sorted(set(flat) - known)
train_util.prepare_dataset_args(args, True)
sanitizer = config_util.ConfigSanitizer(True, True, args.masked_loss, True)
blueprint = config_util.BlueprintGenerator(sanitizer).generate(
    config_util.load_user_config(dataset), args
)
subsets = [
    {"dir": s.params.image_dir, "repeats": s.params.num_repeats, "is_reg": s.params.is_reg,
     "caption_extension": s.params.caption_extension}
    for d in blueprint.dataset_group.datasets for s in d.subsets
]
names = ("guidance_scale", "timestep_sampling", "model_prediction_type", "discrete_flow_shift",
         "t5xxl_max_token_length", "ae", "clip_l", "t5xxl", "cache_text_encoder_outputs",
         "no_half_vae", "full_bf16", "fp8_base", "blocks_to_swap", "sigmoid_scale")
print("RESULT " + json.dumps({
    "unknown": unknown,
    "family_options": {n: getattr(args, n, "absent") for n in names},
    "bucket_reso_steps": [d.params.bucket_reso_steps for d in blueprint.dataset_group.datasets],
    "learning_rate": args.learning_rate,
    "network_alpha": args.network_alpha,
    "text_encoder_lr": args.text_encoder_lr,
    "optimizer_args": args.optimizer_args,
    "network_args": args.network_args,
    "max_train_epochs": args.max_train_epochs,
    "resolution": list(args.resolution),
    "subsets": subsets,
}))
"""


def _probe(run_dir: Path, script: str = "train_network.py") -> dict:
    python, sd = sdlab.sd_python(), sdlab.sd_scripts_dir()
    assert python is not None
    assert sd is not None
    config, dataset = str(run_dir / "config.toml"), str(run_dir / "dataset.toml")
    out = subprocess.run(
        [str(python), "-c", PROBE, config, dataset, script],
        cwd=sd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


def test_rendered_files_pass_sd_scripts_own_parser_and_sanitizer(tmp_path: Path) -> None:
    root = tmp_path / "a dir 中文"
    make_images(root / "data" / "3_sks dog", [(512, 512), (640, 448)])
    make_images(root / "reg" / "1_dog", [(512, 512)] * 3, caption="dog")
    make_images(root / "extra imgs", [(512, 768)], caption_ext=".caption")
    plan = write_plan(
        root,
        base_plan(
            dataset={
                "reg_dir": "reg",
                "keep_tokens": 1,
                "shuffle_caption": True,
                "subsets": [
                    {
                        "image_dir": "extra imgs",
                        "repeats": 2,
                        "caption_extension": "caption",
                        "flip_aug": True,
                    }
                ],
            },
            network={"args": {"conv_dim": 4, "conv_alpha": 1}},
            optimizer={"args": {"weight_decay": 0.01, "betas": [0.9, 0.99]}, "warmup_steps": 0.1},
            sampling={"every_n_epochs": 1, "prompts": ["sks dog --w 512 --h 512 --s 20"]},
            launch={
                "sd_scripts": str(sdlab.sd_scripts_dir()),
                "extra": {"noise_offset": 0.05, "min_snr_gamma": 5},
            },
        ),
    )
    report = check_plan(plan)
    assert report.ok, [str(f) for f in report.findings]
    run_dir = make_run(report).run_dir
    result = _probe(run_dir)
    assert result["unknown"] == []
    assert result["learning_rate"] == 1e-4
    assert result["network_alpha"] == 16.0
    assert result["text_encoder_lr"] == [5e-5]
    assert result["optimizer_args"] == ["weight_decay=0.01", "betas=0.9,0.99"]
    assert result["network_args"] == ["conv_dim=4", "conv_alpha=1"]
    assert result["max_train_epochs"] == 10
    assert result["resolution"] == [512, 512]
    dirs = [(Path(s["dir"]).name, s["repeats"], s["is_reg"]) for s in result["subsets"]]
    assert dirs == [("3_sks dog", 3, False), ("extra imgs", 2, False), ("1_dog", 1, True)]
    assert result["subsets"][1]["caption_extension"] == ".caption"


CASES = {
    # name: (folders {name: sizes}, reg folders, plan dataset/training overrides)
    "buckets": (
        {"2_testchar": [(128, 128)] * 2 + [(192, 80)] * 2},
        {},
        {"resolution": 128, "min_bucket_reso": 64, "max_bucket_reso": 256},
        1,
    ),
    "buckets-batch3": (
        {"3_a": [(128, 128)] * 3 + [(192, 80)] * 2 + [(80, 192)], "1_b": [(100, 140)] * 5},
        {},
        {"resolution": 128, "min_bucket_reso": 64, "max_bucket_reso": 256},
        3,
    ),
    "reg-balancing": (
        {"4_a": [(128, 128)] * 3},
        {"1_reg": [(128, 128)] * 5},
        {"resolution": 128, "min_bucket_reso": 64, "max_bucket_reso": 256},
        2,
    ),
    "no-buckets": (
        {"2_a": [(128, 128)] * 5},
        {"3_r": [(128, 128)] * 2},
        {"resolution": 128, "enable_bucket": False},
        2,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_batches_per_epoch_equal_sd_scripts(tmp_path: Path, run_cli, case: str) -> None:
    folders, reg, dataset, batch = CASES[case]
    for name, sizes in folders.items():
        make_images(tmp_path / "data" / name, sizes)
    for name, sizes in reg.items():
        make_images(tmp_path / "reg" / name, sizes, caption="person")
    if reg:
        dataset = {**dataset, "reg_dir": "reg"}
    plan = write_plan(tmp_path, base_plan(dataset=dataset, training={"batch_size": batch}))
    result = run_cli("check", plan, "--json")
    doc = json.loads(result.stdout)
    ours = doc["steps"]["batches_per_epoch"]
    made = run_cli("make", plan, "--json")
    run_dir = Path(json.loads(made.stdout)["run_dir"])
    theirs = sdlab.sd_dataset_length(run_dir / "dataset.toml", [])
    print(f"{case}: kohya-plan {ours}, sd-scripts {theirs}")
    assert ours == theirs


def _family_run(root: Path, family: str) -> Path:
    make_images(root / "data" / "3_sks", [(1024, 1024), (1216, 832), (800, 1250)])
    model: dict = {
        "family": family,
        "tokenizer_cache_dir": str(ready_tokenizers(root / "tok", family)),
    }
    extra: dict = {}
    if family == "sdxl":
        folder = write_sdxl_diffusers(root / "sdxl")
        model["base"] = str(folder)
        extra = {
            "network": {"train_unet_only": True},
            "training": {
                "mixed_precision": "bf16",
                "full_bf16": True,
                "cache_text_encoder_outputs": True,
            },
            "dataset": {"bucket_reso_steps": 32, "resolution": 1024, "max_bucket_reso": 2048},
            "optimizer": {"text_encoder_lr": [5e-5, 5e-5]},
        }
    else:
        stubs = flux_stub_files(root / "models")
        model |= {
            "base": str(stubs["dit"]),
            **{k: str(stubs[k]) for k in ("ae", "clip_l", "t5xxl")},
        }
        extra = {
            "network": {"module": "networks.lora_flux", "args": {"train_t5xxl": True}},
            "training": {"mixed_precision": "bf16", "fp8_base": True},
            "dataset": {"resolution": 1024, "max_bucket_reso": 2048},
            "optimizer": {"text_encoder_lr": [5e-5, 2e-5]},
            "flux": {"timestep_sampling": "shift", "discrete_flow_shift": 3.1582},
            "rules": {"allow": ["te-lr-ratio"]},
        }
    data = base_plan(model=model, launch={"sd_scripts": str(sdlab.sd_scripts_dir())}, **extra)
    data["model"].pop("clip_skip", None)
    report = check_plan(write_plan(root, data))
    assert report.ok, [str(f) for f in report.findings]
    return make_run(report).run_dir


def test_sdxl_files_pass_sdxl_train_networks_parser(tmp_path: Path) -> None:
    result = _probe(_family_run(tmp_path, "sdxl"), "sdxl_train_network.py")
    assert result["unknown"] == []
    options = result["family_options"]
    assert options["cache_text_encoder_outputs"] is True
    assert options["full_bf16"] is True
    assert options["guidance_scale"] == "absent"  # not an SDXL option
    assert result["text_encoder_lr"] == [5e-5]  # networks.lora: the one value that applies
    assert result["bucket_reso_steps"] == [32]


def test_flux_files_pass_flux_train_networks_parser(tmp_path: Path) -> None:
    run_dir = _family_run(tmp_path, "flux")
    result = _probe(run_dir, "flux_train_network.py")
    assert result["unknown"] == []
    options = result["family_options"]
    assert options["guidance_scale"] == 1.0
    assert options["timestep_sampling"] == "shift"
    assert options["model_prediction_type"] == "raw"
    assert options["discrete_flow_shift"] == 3.1582
    assert options["fp8_base"] is True
    assert options["ae"] == str(tmp_path / "models" / "ae.safetensors")
    assert result["text_encoder_lr"] == [5e-5, 2e-5]  # networks.lora_flux: CLIP-L, T5-XXL
    assert result["network_args"] == ["train_t5xxl=True"]
    assert result["bucket_reso_steps"] == [64]
