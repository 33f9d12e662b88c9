"""Batches per epoch for SDXL and FLUX.1 equal sd-scripts' own `--debug_dataset` count.

sd-scripts prints `Total dataset length (steps)` under `--debug_dataset`; `check --json` must
report the same `steps.batches_per_epoch`. The cases use images whose buckets differ between
a 32-px and a 64-px bucket step (SDXL allows 32; Flux enforces 64), with batch sizes where that
changes the number of batches.

- SDXL: plan (`model.family = "sdxl"`, `dataset.bucket_reso_steps = 32`) -> `check --json` and
  `make` -> `sdxl_train_network.py --debug_dataset` on the rendered dataset.toml. `--debug_dataset`
  never loads the model, so the plan's model is a stand-in Diffusers folder (model_index.json
  only, which is what kohya-plan reads); the tokenizers are the lab's (sdlab_families).
- Flux: `flux_train_network.py --debug_dataset` reads the DiT's header (dev or schnell decides
  the T5 token length), so it gets the lab's tiny DiT; the plan (`model.family = "flux"`, the
  lab's DiT, AE, CLIP-L and T5-XXL files) → `check --json` and `make` → the rendered
  dataset.toml, compared with sd-scripts' count and with the number recorded here.

`--debug_dataset` returns before the family's own argument checks, so it does not refuse a
bucket step that training would refuse (Flux with 32); the cases use the steps training accepts.
The numbers in the cases were measured with sd-scripts at the pinned commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sdlab
import sdlab_families
from helpers import base_plan, make_images, write_plan, write_sdxl_diffusers

pytestmark = [
    pytest.mark.sdscripts,
    pytest.mark.skipif(sdlab.skip_reason() is not None, reason=str(sdlab.skip_reason())),
]

Size = tuple[int, int]

SMALL = {"resolution": 128, "min_bucket_reso": 64, "max_bucket_reso": 256}
LARGE = {"resolution": 1024, "min_bucket_reso": 512, "max_bucket_reso": 2048}

# buckets at 128 px: step 32 puts 100x140, 112x144 and 96x160 into 96x160, 150x100 and 176x96
# into 160x96; step 64 puts most of them into 128x128
MIXED_A: list[Size] = [(128, 128)] * 2 + [(100, 140)] * 2 + [(150, 100)] * 2
MIXED_A += [(96, 160), (192, 80)]
MIXED_B: list[Size] = [(112, 144)] * 4 + [(176, 96)]
# SDXL-sized photos: ten buckets at step 32, eight at step 64
PHOTOS: list[Size] = [(1000, 1400), (1400, 1000), (1024, 1024), (1600, 900), (900, 1600)]
PHOTOS += [(1216, 832), (832, 1216), (1100, 1300), (1300, 1100), (2000, 1000)]
# Flux at 128 px (step 64)
FLUX_MIXED: list[Size] = [(128, 128)] * 3 + [(192, 80)] * 2 + [(80, 192)]
FLUX_MIXED += [(100, 140)] * 2 + [(150, 100)]


@dataclass(frozen=True)
class Case:
    """Image folders (`<repeats>_<name>` -> sizes), [dataset] settings, batch size, and the
    batches per epoch sd-scripts printed for it."""

    folders: dict[str, list[Size]]
    dataset: dict[str, Any]
    batch: int
    sd_scripts: int
    # whether a 64-px step gives a different count (the case shows that the step matters)
    step_matters: bool = field(default=True)


SDXL_CASES = {
    "buckets-batch1": Case({"2_a": MIXED_A, "1_b": MIXED_B}, SMALL, 1, 21, step_matters=False),
    "buckets-batch3": Case({"2_a": MIXED_A, "1_b": MIXED_B}, SMALL, 3, 9),
    "no-upscale-batch3": Case(
        {"2_a": MIXED_A, "1_b": MIXED_B}, {**SMALL, "bucket_no_upscale": True}, 3, 10
    ),
    "1024-batch2": Case({"1_photos": PHOTOS}, LARGE, 2, 10),
}

FLUX_CASES = {
    "buckets-batch1": Case({"2_a": FLUX_MIXED}, SMALL, 1, 18, step_matters=False),
    "buckets-batch3": Case({"2_a": FLUX_MIXED}, SMALL, 3, 7),
    "no-upscale-batch3": Case({"2_a": FLUX_MIXED}, {**SMALL, "bucket_no_upscale": True}, 3, 8),
    "1024-batch2": Case({"1_photos": PHOTOS}, LARGE, 2, 8),
}


def _images(root: Path, case: Case) -> Path:
    for name, sizes in case.folders.items():
        make_images(root / "data" / name, sizes)
    return root / "data"


def _sdxl_standin(folder: Path) -> Path:
    """A Diffusers folder with an SDXL model_index.json and its parts as fake files: what
    kohya-plan reads (sd-scripts' --debug_dataset never loads the weights)."""
    return write_sdxl_diffusers(folder)


def _plan(root: Path, model: dict[str, Any], case: Case, step: int, name: str) -> Path:
    network = {"module": "networks.lora_flux"} if model.get("family") == "flux" else {}
    data = base_plan(
        model=model,
        dataset={**case.dataset, "bucket_reso_steps": step},
        network=network,
        training={"batch_size": case.batch, "mixed_precision": "bf16"},
        launch={"sd_scripts": str(sdlab.sd_scripts_dir())},
    )
    data["model"].pop("clip_skip", None)  # not meaningful for SDXL or Flux
    return write_plan(root, data, name=name)


def _batches(run_cli: Any, plan: Path) -> int:
    result = run_cli("check", plan, "--json")
    doc = json.loads(result.stdout)
    assert doc["ok"], doc["errors"]
    return int(doc["steps"]["batches_per_epoch"])


def _rendered_dataset(run_cli: Any, plan: Path) -> Path:
    made = run_cli("make", plan, "--json")
    return Path(json.loads(made.stdout)["run_dir"]) / "dataset.toml"


@pytest.mark.parametrize("case", sorted(SDXL_CASES))
def test_sdxl_batches_per_epoch_equal_sd_scripts(tmp_path: Path, run_cli: Any, case: str) -> None:
    c = SDXL_CASES[case]
    lab = sdlab.lab_cache_dir()
    tokenizers = sdlab_families.family_tokenizers(lab)
    _images(tmp_path, c)
    model = {
        "base": str(_sdxl_standin(tmp_path / "sdxl-model")),
        "family": "sdxl",
        "tokenizer_cache_dir": str(tokenizers),
    }
    plan = _plan(tmp_path, model, c, 32, "plan.toml")
    ours = _batches(run_cli, plan)
    theirs = sdlab.sd_dataset_length(
        _rendered_dataset(run_cli, plan), [], script="sdxl_train_network.py"
    )
    print(f"sdxl {case}: kohya-plan {ours}, sd-scripts {theirs}")
    assert ours == theirs
    assert theirs == c.sd_scripts, f"sd-scripts now counts {theirs}, {c.sd_scripts} was measured"
    at_64 = _batches(run_cli, _plan(tmp_path, model, c, 64, "plan64.toml"))
    assert (at_64 != ours) == c.step_matters, f"step 64: {at_64}, step 32: {ours}"


def _flux_dataset_toml(root: Path, case: Case) -> Path:
    """The dataset config kohya-plan renders (explicit subsets), with Flux's 64-px step."""
    data = _images(root, case)
    ds = {"bucket_no_upscale": False, **case.dataset}
    lines = [
        "[general]",
        'caption_extension = ".txt"',
        "",
        "[[datasets]]",
        f"resolution = {ds['resolution']}",
        f"batch_size = {case.batch}",
        "enable_bucket = true",
        f"min_bucket_reso = {ds['min_bucket_reso']}",
        f"max_bucket_reso = {ds['max_bucket_reso']}",
        "bucket_reso_steps = 64",
        f"bucket_no_upscale = {str(ds['bucket_no_upscale']).lower()}",
    ]
    for name in case.folders:
        repeats, _, token = name.partition("_")
        lines += [
            "",
            "  [[datasets.subsets]]",
            f"  image_dir = {json.dumps(str(data / name))}",
            f"  num_repeats = {int(repeats)}",
            f"  class_tokens = {json.dumps(token)}",
        ]
    path = root / "dataset.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _flux_length(dataset_toml: Path, dit: Path) -> int:
    sdlab_families.family_tokenizers(sdlab.lab_cache_dir())
    args = ["--pretrained_model_name_or_path", str(dit), "--network_module", "networks.lora_flux"]
    return sdlab.sd_dataset_length(dataset_toml, args, script="flux_train_network.py")


@pytest.mark.parametrize("case", sorted(FLUX_CASES))
def test_flux_debug_dataset_ground_truth(tmp_path: Path, case: str) -> None:
    c = FLUX_CASES[case]
    dit = sdlab_families.tiny_flux_dit(sdlab.lab_cache_dir())["dit"]
    theirs = _flux_length(_flux_dataset_toml(tmp_path, c), dit)
    print(f"flux {case}: sd-scripts {theirs}")
    assert theirs == c.sd_scripts, f"sd-scripts now counts {theirs}, {c.sd_scripts} was measured"


@pytest.mark.parametrize("case", sorted(FLUX_CASES))
def test_flux_batches_per_epoch_equal_sd_scripts(tmp_path: Path, run_cli: Any, case: str) -> None:
    c = FLUX_CASES[case]
    lab = sdlab.lab_cache_dir()
    files = sdlab_families.tiny_flux(lab)
    dit = files["dit"]
    model: dict[str, Any] = {
        "base": str(dit),
        "family": "flux",
        "tokenizer_cache_dir": str(sdlab_families.family_tokenizers(lab)),
    }
    model.update({k: str(v) for k, v in files.items() if k != "dit"})
    _images(tmp_path, c)
    plan = _plan(tmp_path, model, c, 64, "plan.toml")
    ours = _batches(run_cli, plan)
    theirs = _flux_length(_rendered_dataset(run_cli, plan), dit)
    print(f"flux {case}: kohya-plan {ours}, sd-scripts {theirs}")
    assert ours == theirs
    assert theirs == c.sd_scripts, f"sd-scripts now counts {theirs}, {c.sd_scripts} was measured"
