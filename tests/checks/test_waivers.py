"""Waivers do what `kohya-plan rules` says, and nothing more.

Every rule listed as waivable has a plan here that triggers it; waiving it turns the finding
into "waived" and no longer blocks. No waiver, not even all of them at once, makes an unusable
plan (no training image, a dataset folder that does not exist, the T3 trap) ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pytest
from hardware_helpers import card, machine
from helpers import base_plan, flux_stub_files, make_images, png_header, write_plan

from kohya_plan.checks import blocking, run_checks
from kohya_plan.inputs.accelerate_config import AccelerateConfig
from kohya_plan.planning import check_plan
from kohya_plan.rules import RULES

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from kohya_plan.checks.report import CheckReport
    from kohya_plan.inputs.hardware import Hardware

WAIVABLE = sorted(rule.id for rule in RULES.values() if rule.waivable)


def _images(name: str, count: int = 4, **kw: Any) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        make_images(root / "data" / name, [(512, 512)] * count, **kw)

    return build


def _both(*builders: Callable[[Path], None]) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        for builder in builders:
            builder(root)

    return build


def _sizes(*sizes: tuple[int, int]) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        make_images(root / "data" / "5_testchar", list(sizes))

    return build


_FOUR_IMAGES = _images("5_testchar")


def _duplicate(root: Path) -> None:
    folder = make_images(root / "data" / "5_testchar", [(512, 512)] * 4)
    (folder / "img0.jpg").write_bytes((folder / "img0.png").read_bytes())


def _skipped(root: Path) -> None:
    folder = make_images(root / "data" / "5_testchar", [(512, 512)] * 4)
    (folder / "img9.Jpg").write_bytes((folder / "img0.png").read_bytes())


def _with(name: str, text: str) -> Callable[[Path], None]:
    """The four images, and one more file beside them."""

    def build(root: Path) -> None:
        folder = make_images(root / "data" / "5_testchar", [(512, 512)] * 4)
        (folder / name).write_text(text, encoding="utf-8")

    return build


def _large(root: Path) -> None:
    folder = make_images(root / "data" / "5_testchar", [(512, 512)] * 4)
    png_header(folder / "huge.png", 9460, 9460)  # above Pillow's warning limit, below its error
    (folder / "huge.txt").write_text("testchar", encoding="utf-8")


def _nested(root: Path) -> None:
    folder = make_images(root / "data" / "5_testchar", [(512, 512)] * 4)
    make_images(folder / "originals", [(64, 64)] * 2, caption=None)


def _loose(root: Path) -> None:
    make_images(root / "data" / "5_testchar", [(512, 512)] * 4)
    make_images(root / "data", [(512, 512)] * 2, stem="loose")


def _flux(root: Path) -> None:
    _FOUR_IMAGES(root)
    flux_stub_files(root / "models")


SDXL = {"family": "sdxl", "base": "someone/sdxl-model", "clip_skip": None}
FLUX = {
    "family": "flux",
    "base": "models/dit.safetensors",
    "ae": "models/ae.safetensors",
    "clip_l": "models/clip_l.safetensors",
    "t5xxl": "models/t5xxl.safetensors",
    "clip_skip": None,
}
FLUX_NET = {"module": "networks.lora_flux"}


def _reg(root: Path) -> None:
    make_images(root / "data" / "5_testchar", [(512, 512)] * 4)
    make_images(root / "reg" / "1_person", [(512, 512)] * 30)


@dataclass
class Scenario:
    """A plan (and its data, and a machine) on which one waivable rule fires."""

    plan: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: Callable[[Path], None] = _FOUR_IMAGES
    hardware: Hardware | None = None
    accelerate_config: dict[str, Any] | None = None
    """The values of a default accelerate config file found on the machine."""


SCENARIOS: dict[str, Scenario] = {
    # errors a plan may knowingly go against
    "alpha-above-dim": Scenario({"network": {"dim": 32, "alpha": 64}}),
    "te-lr-ratio": Scenario({"optimizer": {"text_encoder_lr": 1e-4}}),
    "scheduler-polynomial-lr": Scenario(
        {
            "optimizer": {
                "scheduler": "polynomial",
                "learning_rate": 1e-8,
                "unet_lr": 1e-8,
                "text_encoder_lr": 5e-9,
            }
        }
    ),
    "folder-no-repeats": Scenario(data=_both(_images("5_testchar"), _images("testchar_extra"))),
    "folder-zero-repeats": Scenario(data=_both(_images("5_testchar"), _images("0_testchar"))),
    "missing-captions": Scenario(data=_images("5_testchar", caption=None)),
    "duplicate-stems": Scenario(data=_duplicate),
    "image-size-no-bucket": Scenario(
        {"dataset": {"enable_bucket": False}, "training": {"cache_latents": False}},
        data=_sizes(*[(640, 480)] * 4),
    ),
    # advice (never blocking; waiving it moves it to "waived")
    "steps-range": Scenario(),
    "image-count": Scenario(),
    "epochs-range": Scenario({"training": {"epochs": 20}}),
    "rank-range": Scenario({"network": {"dim": 2, "alpha": 1}}),
    "clip-skip-style": Scenario({"model": {"base": "someone/realistic-vision", "clip_skip": 2}}),
    "keep-tokens": Scenario({"dataset": {"shuffle_caption": True}}),
    "mixed-sizes-no-bucket": Scenario(
        {"dataset": {"enable_bucket": False}}, data=_sizes((512, 512), (640, 480), (512, 512))
    ),
    "adaptive-lr": Scenario({"optimizer": {"type": "DAdaptAdam"}}),
    "te-lr-zero": Scenario({"optimizer": {"text_encoder_lr": 0.0}}),
    "prompts-unused": Scenario({"sampling": {"prompts": ["testchar, smiling"]}}),
    "reg-unused": Scenario({"dataset": {"reg_dir": "reg"}}, data=_reg),
    "skipped-files": Scenario(data=_skipped),
    # data-set traps, each with what sd-scripts really does
    "blank-caption": Scenario(data=_with("img0.txt", "  \n")),
    "caption-bom": Scenario(data=_with("img0.txt", "\ufefftestchar, red hair")),
    "orphan-captions": Scenario(data=_with("gone.txt", "testchar")),
    "image-large": Scenario(data=_large),
    "nested-folders": Scenario(data=_nested),
    "loose-images": Scenario(data=_loose),
    "sd-scripts-missing": Scenario({"launch": {"sd_scripts": "no-sd-scripts-here"}}),
    "gpu-batch-size": Scenario({"training": {"batch_size": 64}}, hardware=machine(card(6))),
    "gpu-precision": Scenario(
        {"training": {"mixed_precision": "bf16"}}, hardware=machine(card(24, cap=(7, 5)))
    ),
    "no-gpu": Scenario({"training": {"mixed_precision": "no"}}, hardware=machine()),
    "disk-space": Scenario(hardware=machine(card(24), disk_gib=0.001)),
    "ram": Scenario(hardware=machine(card(24), ram_gib=2)),
    "cpu-fp16": Scenario(hardware=machine()),
    "vram-fit": Scenario({"network": {"dim": 128, "alpha": 64}}, hardware=machine(card(1))),
    # many processes
    "steps-processes": Scenario(
        {"training": {"epochs": None, "max_train_steps": 40}, "launch": {"num_processes": 2}}
    ),
    "warmup-processes": Scenario(
        {
            "optimizer": {"scheduler": "constant_with_warmup", "warmup_steps": 4},
            "launch": {"num_processes": 2},
        }
    ),
    "ddp-ignored": Scenario({"launch": {"ddp_static_graph": True}}),
    "accelerate-default-config": Scenario(
        accelerate_config={"distributed_type": "DEEPSPEED", "num_processes": 4}
    ),
    # the model families' own rules
    "sdxl-half-vae": Scenario({"model": SDXL}),
    "network-module-unknown": Scenario({"network": {"module": "my_networks.custom_lora"}}),
    "option-ignored": Scenario(
        {"model": SDXL | {"clip_skip": 2}, "training": {"mixed_precision": "bf16"}}
    ),
    "te-lr-unused": Scenario(
        {
            "model": FLUX,
            "network": FLUX_NET,
            "optimizer": {"text_encoder_lr": [5e-5, 5e-5]},
            "training": {"mixed_precision": "bf16"},
        },
        data=_flux,
    ),
    "flux-guidance": Scenario(
        {
            "model": FLUX,
            "network": FLUX_NET,
            "flux": {"guidance_scale": 3.5},
            "training": {"mixed_precision": "bf16"},
        },
        data=_flux,
    ),
    "flux-fp32": Scenario(
        {"model": FLUX, "network": FLUX_NET, "training": {"mixed_precision": "no"}}, data=_flux
    ),
}


def _report(root: Path, scenario: Scenario, allow: list[str]) -> CheckReport:
    scenario.data(root)
    report = check_plan(write_plan(root, _plan_data(scenario, allow)))
    facts = report.facts
    if scenario.hardware is not None:
        facts = replace(facts, hardware=scenario.hardware)
    if scenario.accelerate_config is not None:
        found = AccelerateConfig(root / "default_config.yaml", scenario.accelerate_config)
        facts = replace(facts, accelerate_config=found)
    if facts is report.facts:
        return report
    return replace(report, facts=facts, findings=run_checks(report.plan, facts))


def _plan_data(scenario: Scenario, allow: list[str]) -> dict[str, Any]:
    data = base_plan(**scenario.plan, rules={"allow": allow})
    data["model"] = {k: v for k, v in data["model"].items() if v is not None}
    return data


def test_every_waivable_rule_has_a_scenario() -> None:
    """A new waivable rule needs a plan here that shows its waiver works."""
    assert sorted(SCENARIOS) == WAIVABLE


@pytest.mark.parametrize("rule_id", WAIVABLE)
def test_the_waiver_turns_the_finding_into_waived(tmp_path: Path, rule_id: str) -> None:
    scenario = SCENARIOS[rule_id]
    before = _report(tmp_path / "as-is", scenario, [])
    hits = [f for f in before.findings if f.id == rule_id]
    assert hits, f"the scenario does not trigger {rule_id}: {[f.id for f in before.findings]}"
    assert not any(f.waived for f in hits)
    if RULES[rule_id].severity == "error":
        assert {f.id for f in blocking(before.findings)} == {rule_id}
        assert not before.ok

    after = _report(tmp_path / "waived", scenario, [rule_id])
    waived = [f for f in after.findings if f.id == rule_id]
    assert waived
    assert all(f.waived for f in waived)
    assert after.ok, [f.id for f in blocking(after.findings)]


@pytest.mark.parametrize("rule_id", [r for r in WAIVABLE if RULES[r].severity == "error"])
def test_a_waived_error_lets_make_go_on_and_is_still_printed(
    tmp_path: Path, run_cli: Any, rule_id: str
) -> None:
    scenario = SCENARIOS[rule_id]
    scenario.data(tmp_path)
    plan = write_plan(tmp_path, _plan_data(scenario, [rule_id]))
    checked = run_cli("check", plan, "--no-hardware")
    assert checked.exit_code == 0, checked.output
    assert "(waived)" in checked.output
    made = run_cli("make", plan, "--dry-run")
    assert made.exit_code == 0, made.output


def _no_folder(root: Path) -> None:
    (root / "data").mkdir()


def _trap(root: Path) -> None:
    make_images(root / "data" / "5_testchar", [(512, 512)] * 4)


def _subset_empty(root: Path) -> None:
    (root / "data" / "empty").mkdir(parents=True)


UNUSABLE: dict[str, tuple[dict[str, dict[str, Any]], Callable[[Path], None], str]] = {
    "no images at all": ({}, _images("5_testchar", count=0), "no-images"),
    "folder does not exist": ({"dataset": {"train_dir": "nowhere"}}, _images("5_x"), "missing"),
    "T3 trap": ({"dataset": {"train_dir": "data/5_testchar"}}, _trap, "dataset-trap"),
    "no N_name folders": ({}, _no_folder, "dataset-no-folders"),
    "only a folder without repeats": ({}, _images("testchar"), "no-training-data"),
    "only a zero-repeat folder": ({}, _images("0_testchar"), "dataset-no-folders"),
    "only images sd-scripts skips": ({}, _images("5_testchar", ext=".Png"), "no-images"),
    "an empty explicit subset": (
        {"dataset": {"train_dir": None, "subsets": [{"image_dir": "data/empty"}]}},
        _subset_empty,
        "no-images",
    ),
}


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_no_waiver_makes_an_unusable_plan_ready(tmp_path: Path, run_cli: Any, case: str) -> None:
    sections, data, expected = UNUSABLE[case]
    data(tmp_path)
    plan_data = base_plan(**sections, rules={"allow": WAIVABLE})
    if plan_data["dataset"].get("train_dir") is None:
        plan_data["dataset"].pop("train_dir")
    plan = write_plan(tmp_path, plan_data)
    report = check_plan(plan)
    assert not report.ok
    ids = {f.id for f in blocking(report.findings)}
    assert any(expected in i for i in ids), ids
    assert all(not RULES[i].waivable for i in ids)
    before = sorted(tmp_path.rglob("*"))
    made = run_cli("make", plan)
    assert made.exit_code == 2, made.output
    assert sorted(tmp_path.rglob("*")) == before


def test_rules_lists_exactly_the_waivable_ids(run_cli: Any) -> None:
    listed = run_cli("rules").output.splitlines()[1:]
    waivable = sorted(line.split()[0] for line in listed if line.split()[3] == "yes")
    assert waivable == WAIVABLE
    assert len(listed) == len(RULES)


@pytest.mark.parametrize("rule_id", sorted(r.id for r in RULES.values() if not r.waivable))
def test_a_rule_that_cannot_be_waived_is_refused_in_allow(
    tmp_path: Path, run_cli: Any, rule_id: str
) -> None:
    _FOUR_IMAGES(tmp_path)
    plan = write_plan(tmp_path, base_plan(rules={"allow": [rule_id]}))
    result = run_cli("check", plan, "--no-hardware")
    assert result.exit_code == 2, result.output
    assert f"{rule_id!r} cannot be waived" in result.output
