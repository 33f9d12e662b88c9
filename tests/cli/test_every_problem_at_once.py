"""Every problem at once: schema errors (unknown keys, wrong types) and what the dataset and
the model on disk show are reported in the same run, wherever the rest of the plan can still be
checked. One broken section must not hide the dataset's errors."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from helpers import base_plan, make_images, write_plan

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def _uncaptioned(root: Path) -> None:
    make_images(root / "data" / "5_testchar", [(512, 512)] * 4, caption=None)


def _good(root: Path) -> None:
    make_images(root / "data" / "5_testchar", [(512, 512)] * 4)


def _empty_model(root: Path) -> None:
    _good(root)
    (root / "model").mkdir()


CASES: list[tuple[str, dict[str, Any], Callable[[Path], None], list[str]]] = [
    (
        "unknown key + missing dataset folder",
        {"network": {"dimm": 8}, "dataset": {"train_dir": "nowhere"}},
        _good,
        ["unknown-key", "dataset-missing"],
    ),
    (
        "wrong type + images without captions",
        {"training": {"epochs": "10"}},
        _uncaptioned,
        ["invalid", "missing-captions"],
    ),
    (
        "unknown section + a model that is an empty folder",
        {"trainig": {"epochs": 5}, "model": {"base": "model"}},
        _empty_model,
        ["unknown-key", "model-not-a-model"],
    ),
    (
        "broken [rules] (no waiver then) + images without captions",
        {"rules": {"allow": ["missing-captions", "no-such-rule"]}},
        _uncaptioned,
        ["invalid", "missing-captions"],
    ),
    (
        "broken [optimizer] + a folder trap",
        {"optimizer": {"type": "AdamW9bit"}, "dataset": {"train_dir": "data/5_testchar"}},
        _good,
        ["invalid", "dataset-trap"],
    ),
]


@pytest.mark.parametrize(("case", "sections", "data", "ids"), CASES, ids=[c[0] for c in CASES])
def test_schema_and_data_errors_in_one_run(
    tmp_path: Path,
    run_cli: Any,
    case: str,
    sections: dict[str, Any],
    data: Callable[[Path], None],
    ids: list[str],
) -> None:
    data(tmp_path)
    plan = write_plan(tmp_path, base_plan(**sections))
    result = run_cli("check", plan, "--json", "--no-hardware")
    assert result.exit_code == 2, result.output
    found = [e["id"] for e in json.loads(result.output)["errors"]]
    for rule_id in ids:
        assert rule_id in found, found
    # the plan's own problems come first, then what the data shows
    schema = [i for i, e in enumerate(found) if e in ("invalid", "unknown-key", "missing")]
    data_ids = [i for i, e in enumerate(found) if e not in ("invalid", "unknown-key", "missing")]
    assert max(schema) < min(data_ids)

    before = sorted(tmp_path.rglob("*"))
    made = run_cli("make", plan)
    assert made.exit_code == 2
    errors = json.loads(result.output)["errors"]
    assert f"problems ({len(errors)})" in made.output, made.output
    for error in errors:
        assert error["field"] in made.output
    assert sorted(tmp_path.rglob("*")) == before


def test_a_valid_waiver_still_applies_beside_a_broken_section(tmp_path: Path, run_cli: Any) -> None:
    _uncaptioned(tmp_path)
    plan = write_plan(
        tmp_path, base_plan(network={"dimm": 8}, rules={"allow": ["missing-captions"]})
    )
    result = run_cli("check", plan, "--json", "--no-hardware")
    found = [e["id"] for e in json.loads(result.output)["errors"]]
    assert found == ["unknown-key"]


def test_a_broken_dataset_section_is_not_checked_with_stand_ins(
    tmp_path: Path, run_cli: Any
) -> None:
    """With [dataset] itself broken nothing is said about folders (no false alarms)."""
    _good(tmp_path)
    plan = write_plan(tmp_path, base_plan(dataset={"resolution": "x"}))
    result = run_cli("check", plan, "--json", "--no-hardware")
    errors = json.loads(result.output)["errors"]
    assert [e["field"] for e in errors] == ["dataset.resolution"]
