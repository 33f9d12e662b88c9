"""Broken plans and datasets: each must exit 2, name the field and the fix, print no traceback,
and write nothing. Valid plans with unicode, spaces and quotes in paths must work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import toml
from helpers import base_plan, make_images, write_plan

from kohya_plan.loading import loads_toml

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


@dataclass
class Case:
    id: str
    field: str  # must appear in the output
    fix: str  # a piece of the fix that must appear
    plan: dict[str, dict[str, Any]] = field(default_factory=dict)
    dataset: Callable[[Path], None] | None = None  # replaces the default dataset
    raw: str | bytes | None = None  # plan file content instead of TOML from `plan`
    args: tuple[str, ...] = ()


def _good_data(root: Path) -> None:
    make_images(root / "data" / "5_testchar", [(512, 512)] * 4)


def _folder(
    name: str, sizes: list[tuple[int, int]] | None = None, **kw: Any
) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        make_images(root / "data" / name, [(512, 512)] * 3 if sizes is None else sizes, **kw)

    return build


def _trap(root: Path) -> None:
    make_images(root / "data" / "5_testchar", [(512, 512)] * 3)


def _bytes_caption(content: bytes) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        folder = make_images(root / "data" / "5_testchar", [(512, 512)] * 3)
        (folder / "img1.txt").write_bytes(content)

    return build


def _garbage_image(root: Path) -> None:
    folder = make_images(root / "data" / "5_testchar", [(512, 512)] * 3)
    (folder / "img2.png").write_bytes(b"not an image at all")


def _duplicate_stem(root: Path) -> None:
    folder = make_images(root / "data" / "5_testchar", [(512, 512)] * 3)
    (folder / "img0.jpg").write_bytes((folder / "img0.png").read_bytes())


CASES = [
    Case("toml-syntax", "plan.toml", "fix the syntax", raw="[model\nbase = 1\n"),
    Case(
        "toml-not-utf8", "plan.toml", "save the file as UTF-8", raw=b'[model]\nbase = "\xff\xfe"\n'
    ),
    Case("unknown-section", "trainig", 'did you mean "training"', plan={"trainig": {"epochs": 5}}),
    Case("unknown-key", "network.dimm", 'did you mean "dim"', plan={"network": {"dimm": 8}}),
    Case("wrong-type", "network.dim", "whole number", plan={"network": {"dim": "big"}}),
    Case("out-of-range", "network.dim", "from 1 to 1024", plan={"network": {"dim": 0}}),
    Case("nan", "optimizer.learning_rate", "ordinary number", raw="nan"),
    Case("inf", "optimizer.unet_lr", "ordinary number", raw="inf"),
    Case("alpha-above-dim", "network.alpha", "at most 32", plan={"network": {"alpha": 64}}),
    Case(
        "te-lr-high",
        "optimizer.text_encoder_lr",
        "between 1e-05 and 5e-05",
        plan={"optimizer": {"text_encoder_lr": 1e-4}},
    ),
    Case(
        "te-lr-low",
        "optimizer.text_encoder_lr",
        "between 1e-05 and 5e-05",
        plan={"optimizer": {"text_encoder_lr": 1e-6}},
    ),
    Case(
        "scheduler-typo",
        "optimizer.scheduler",
        'did you mean "cosine_with_restarts"',
        plan={"optimizer": {"scheduler": "cosine_wite_restarts"}},
    ),
    Case(
        "optimizer-typo",
        "optimizer.type",
        'did you mean "AdamW8bit"',
        plan={"optimizer": {"type": "AdamW9bit"}},
    ),
    Case(
        "constant-warmup",
        "optimizer.warmup_steps",
        "constant_with_warmup",
        plan={"optimizer": {"scheduler": "constant", "warmup_steps": 10}},
    ),
    Case(
        "warmup-float",
        "optimizer.warmup_steps",
        "write 100 for a step count",
        plan={"optimizer": {"warmup_steps": 100.0}},
    ),
    Case(
        "cache-color-aug",
        "training.cache_latents",
        "cache_latents = false",
        plan={"dataset": {"color_aug": True}},
    ),
    Case(
        "bucket-min",
        "dataset.min_bucket_reso",
        "at most 512",
        plan={"dataset": {"min_bucket_reso": 640}},
    ),
    Case(
        "bucket-max",
        "dataset.max_bucket_reso",
        "at least 768",
        plan={"dataset": {"resolution": [768, 512], "max_bucket_reso": 640}},
    ),
    Case(
        "bucket-steps",
        "dataset.bucket_reso_steps",
        "bucket_reso_steps = 64",
        plan={"dataset": {"bucket_reso_steps": 48}},
    ),
    Case(
        "prompt-flag",
        "sampling.prompts",
        "use --n, --w",
        plan={"sampling": {"every_n_epochs": 1, "prompts": ["1girl --c 7"]}},
    ),
    Case(
        "sampling-no-prompts",
        "sampling.prompts",
        "add prompts",
        plan={"sampling": {"every_n_epochs": 1}},
    ),
    Case("output-name-path", "output.name", "plain name", plan={"output": {"name": "loras/x"}}),
    Case(
        "mixed-precision",
        "training.mixed_precision",
        "'no', 'fp16' or 'bf16'",
        plan={"training": {"mixed_precision": "fp32"}},
    ),
    Case(
        "model-missing",
        "model.base",
        "fix the path",
        plan={"model": {"base": "models/sd15.safetensors"}},
    ),
    Case(
        "dataset-trap",
        "dataset.train_dir",
        "to its parent folder",
        plan={"dataset": {"train_dir": "data/5_testchar"}},
        dataset=_trap,
    ),
    Case(
        "dataset-missing",
        "dataset.train_dir",
        "check the path",
        plan={"dataset": {"train_dir": "nowhere"}},
    ),
    Case("folder-no-repeats", "dataset.train_dir", "10_testchar", dataset=_folder("testchar")),
    Case(
        "folder-zero-repeats",
        "dataset.train_dir",
        "repeat count of 1 or more",
        dataset=_folder("0_testchar"),
    ),
    Case("no-images", "dataset.train_dir", "add images", dataset=_folder("5_x", sizes=[])),
    Case(
        "missing-captions",
        "dataset.train_dir",
        "caption_extension",
        dataset=_folder("5_testchar", caption=None),
    ),
    Case(
        "caption-extension",
        "dataset.train_dir",
        "caption_extension",
        dataset=_folder("5_testchar", caption_ext=".caption"),
    ),
    Case("empty-caption", "dataset.train_dir", "write a caption", dataset=_bytes_caption(b"")),
    Case(
        "caption-not-utf8",
        "dataset.train_dir",
        "UTF-8",
        dataset=_bytes_caption("角色".encode("gbk")),
    ),
    Case("unreadable-image", "dataset.train_dir", "re-save or remove", dataset=_garbage_image),
    Case("duplicate-stems", "dataset.train_dir", "rename one", dataset=_duplicate_stem),
    Case(
        "extra-unknown",
        "launch.extra",
        'did you mean "noise_offset"',
        plan={"launch": {"extra": {"noise_ofset": 0.1}}},
    ),
    Case(
        "extra-type",
        "launch.extra",
        "takes a number",
        plan={"launch": {"extra": {"noise_offset": "x"}}},
    ),
    Case(
        "extra-owned",
        "launch.extra",
        "set network.dim instead",
        plan={"launch": {"extra": {"network_dim": 8}}},
    ),
    Case(
        "rules-unknown",
        "rules.allow",
        'did you mean "te-lr-ratio"',
        plan={"rules": {"allow": ["te-lr-ratoi"]}},
    ),
    Case(
        "both-only",
        "network.train_text_encoder_only",
        "at most one",
        plan={"network": {"train_unet_only": True, "train_text_encoder_only": True}},
    ),
    Case(
        "resolution-small",
        "dataset.resolution",
        "at least 64",
        plan={"dataset": {"resolution": 32}},
    ),
    Case(
        "size-no-bucket",
        "dataset.resolution",
        "enable_bucket = true",
        plan={"dataset": {"enable_bucket": False}, "training": {"cache_latents": False}},
        dataset=_folder("5_testchar", sizes=[(640, 480)] * 3),
    ),
    Case(
        "epochs-and-steps",
        "training",
        "keep only one",
        plan={"training": {"epochs": 5, "max_train_steps": 500}},
    ),
    Case("set-syntax", "--set", "e.g. --set training.epochs=5", args=("--set", "epochs")),
]


def _setup(root: Path, case: Case) -> Path:
    (case.dataset or _good_data)(root)
    if isinstance(case.raw, bytes):
        path = root / "plan.toml"
        path.write_bytes(case.raw)
        return path
    if case.raw in ("nan", "inf"):
        key = "learning_rate" if case.raw == "nan" else "unet_lr"
        text = toml.dumps(base_plan())
        assert f"\n{key} = 0.0001" in text
        path = root / "plan.toml"
        path.write_text(
            text.replace(f"\n{key} = 0.0001", f"\n{key} = {case.raw}", 1), encoding="utf-8"
        )
        return path
    if case.raw is not None:
        path = root / "plan.toml"
        path.write_text(case.raw, encoding="utf-8")
        return path
    return write_plan(root, base_plan(**case.plan))


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("command", ["check", "make"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_broken_input_exits_2_with_field_and_fix(
    tmp_path: Path, run_cli, case: Case, command: str
) -> None:
    plan = _setup(tmp_path, case)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = run_cli(command, plan, *case.args)
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert case.field in output, output
    assert case.fix in output, output
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, "a failed command must write nothing"


def test_check_json_reports_errors_with_ids(tmp_path: Path, run_cli) -> None:
    plan = write_plan(tmp_path, base_plan(network={"alpha": 64}))
    _good_data(tmp_path)
    import json

    result = run_cli("check", plan, "--json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert [e["id"] for e in doc["errors"]] == ["alpha-above-dim"]
    assert doc["errors"][0]["field"] == "network.alpha"


def test_unicode_and_space_paths_work(tmp_path: Path, run_cli) -> None:
    root = tmp_path / "my plans 'quoted' \"dq\" 中文 back\\slash"
    make_images(root / "数据 集" / "5_角色 a", [(512, 512)] * 4, caption="角色, 1girl")
    plan = write_plan(
        root,
        base_plan(
            dataset={"train_dir": "数据 集"}, output={"name": "角色 lora", "dir": "输出 out"}
        ),
    )
    result = run_cli("make", plan)
    assert result.exit_code == 0, result.output
    (run_dir,) = (root / "runs").iterdir()
    dataset = (run_dir / "dataset.toml").read_text(encoding="utf-8")
    config = (run_dir / "config.toml").read_text(encoding="utf-8")
    for text in (dataset, config):
        assert toml.loads(text) == loads_toml(text)
    subset = loads_toml(dataset)["datasets"][0]["subsets"][0]
    assert subset["image_dir"] == str(root / "数据 集" / "5_角色 a")
    assert subset["class_tokens"] == "角色 a"
    assert loads_toml(config)["saving"]["output_name"] == "角色 lora"
