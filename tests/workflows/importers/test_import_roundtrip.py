"""Round trip: importing the config.toml + dataset.toml that `make` wrote gives back a plan that
renders the very same files, byte for byte (the golden cases of tests/golden/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import make_images, write_diffusers

from kohya_plan.planning import check_plan, make_run

TESTS = Path(__file__).resolve().parents[2]
GOLDEN = TESTS / "golden"
EXAMPLE = TESTS.parent / "examples" / "tutorial"


def _golden_case(case: str, root: Path) -> Path:
    """The plan and data of a golden case (as tests/test_golden.py lays them out)."""
    if case == "tutorial":
        shutil.copytree(EXAMPLE / "datasets", root / "datasets")
        shutil.copy(EXAMPLE / "plan.toml", root / "plan.toml")
    else:
        shutil.copy(GOLDEN / case / "plan.toml", root / "plan.toml")
        make_images(root / "images" / "portraits", [(512, 768)] * 3, caption="sks woman, smile")
        make_images(root / "images" / "full body", [(768, 512)] * 2, caption_ext=".caption")
        make_images(root / "reg" / "1_woman", [(512, 512)] * 4, caption="woman")
        write_diffusers(root / "models" / "tiny sd15")
    return root / "plan.toml"


@pytest.mark.parametrize("case", ["tutorial", "subsets-reg"])
def test_import_of_made_files_renders_them_again(tmp_path: Path, case: str, run_cli) -> None:
    root = tmp_path / "root dir"
    root.mkdir()
    plan = _golden_case(case, root)
    first = check_plan(plan)
    assert first.ok, [str(f) for f in first.findings]
    run_dir = make_run(first).run_dir
    # The new plan takes the old one's place, so the files' headers name the same plan.
    plan.rename(root / "original.toml")
    result = run_cli(
        "import",
        run_dir / "config.toml",
        "--dataset-config",
        run_dir / "dataset.toml",
        "-o",
        plan,
    )
    assert result.exit_code == 0, result.output
    again = check_plan(plan)
    assert again.ok, [str(f) for f in again.findings]
    second_dir = make_run(again).run_dir
    for name in ("config.toml", "dataset.toml", "prompts.txt"):
        before = (run_dir / name).read_text(encoding="utf-8").replace(run_dir.name, "<RUN>")
        after = (second_dir / name).read_text(encoding="utf-8").replace(second_dir.name, "<RUN>")
        assert after == before, f"{case}/{name} differs after the round trip"


def test_round_trip_plan_names_its_sources(tmp_path: Path, run_cli) -> None:
    root = tmp_path / "root"
    root.mkdir()
    run_dir = make_run(check_plan(_golden_case("subsets-reg", root))).run_dir
    target = tmp_path / "imported.toml"
    result = run_cli(
        "import",
        run_dir / "config.toml",
        "--dataset-config",
        run_dir / "dataset.toml",
        "-o",
        target,
    )
    assert result.exit_code == 0, result.output
    text = target.read_text(encoding="utf-8")
    assert 'type = "Lion" # ← optimizer.optimizer_type' in text
    assert "[[dataset.subsets]]" in text
    assert "# ← datasets[0].subsets[1].flip_aug" in text
    assert "noise_offset = 0.05 # ← extra.noise_offset" in text
