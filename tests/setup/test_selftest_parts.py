"""The selftest's own pieces: its plan passes `check`, and its verdicts catch a bad run."""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING

from kohya_plan.planning import check_plan
from kohya_plan.setup.selftest import STEPS, judge, plan_text, safetensors_keys, write_dataset

if TYPE_CHECKING:
    from pathlib import Path


def _safetensors(path: Path, names: list[str]) -> Path:
    header = {
        n: {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
        for i, n in enumerate(names)
    }
    header["__metadata__"] = {"ss_network_dim": "4"}  # type: ignore[assignment]
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 4 * len(names))
    return path


def test_the_selftest_plan_checks_clean(tmp_path: Path) -> None:
    from helpers import sd15_pipeline

    model = tmp_path / "tiny-sd15"
    for name, data in sd15_pipeline().items():
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(data)
    write_dataset(tmp_path)
    plan = tmp_path / "plan.toml"
    plan.write_text(
        plan_text(
            model=model,
            tokenizer_cache=tmp_path / "tok",
            sd_scripts=tmp_path / "sd",
            python="/venv/bin/python",
            mixed_precision="no",
        )
    )
    report = check_plan(plan, [], hardware=False)
    errors = [f for f in report.findings if f.severity == "error" and f.id != "sd-scripts-missing"]
    assert errors == []
    assert report.facts.steps is not None
    assert report.facts.steps.total_optimization_steps == STEPS


def test_verdicts_pass_a_good_run_and_name_what_a_bad_one_lacks(tmp_path: Path) -> None:
    lora = _safetensors(tmp_path / "selftest.safetensors", ["lora_unet_a.lora_down.weight"])
    assert safetensors_keys(lora) == ["lora_unet_a.lora_down.weight"]
    summary = {
        "outcome": "succeeded",
        "steps_done": STEPS,
        "steps_total": STEPS,
        "files": [{"path": str(lora)}],
    }
    scalars = {"loss/current": [(i, 0.1 * i) for i in range(1, STEPS + 1)]}
    assert all(v.passed for v in judge(summary, lora, scalars))

    bad = {"outcome": "failed", "cause": "CUDA out of memory", "steps_done": 1, "steps_total": 4}
    nan = {"loss/current": [(1, float("nan"))]}
    (tmp_path / "empty.safetensors").write_bytes(b"")
    verdicts = {v.what: v for v in judge(bad, tmp_path / "empty.safetensors", nan)}
    assert not verdicts["run succeeded"].passed
    assert "CUDA out of memory" in verdicts["run succeeded"].detail
    assert verdicts[f"{STEPS} optimization steps"].detail == "1 of 4"
    assert not verdicts["LoRA file"].passed
    assert not verdicts["TensorBoard loss"].passed
    assert not verdicts["summary lists the files"].passed
