"""compare.html: the runs' samples by epoch for each prompt, the loss per epoch overlaid, the
differing settings as labels, each LoRA file's size, and the X/Y grid of two settings (T30)."""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING

import pytest
from compare_lab import trained_sweep

from kohya_plan.errors import UsageError
from kohya_plan.workflows.compare import differing_settings, gather_compare, write_compare

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from click.testing import Result


def _images(page: str) -> list[tuple[str, str]]:
    """(data-name, src) of every sample image on the page, in page order."""
    return re.findall(
        r'<img class="sample" src="([^"]+)" alt="[^"]*" title="[^"]*" data-name="([^"]+)"', page
    )


def test_a_sweep_side_by_side(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    sweep = trained_sweep(tmp_path, epochs=3, prompts=2)
    result = run_cli("compare", sweep.path)
    assert result.exit_code == 0, result.output
    page_path = sweep.path / "compare.html"
    assert result.output.strip() == f"Wrote {page_path}"
    page = page_path.read_text(encoding="utf-8")
    # the differing settings are the runs' labels, in the grid's order
    labels = re.findall(r'<th class="row run" scope="row"><div>([^<]+)</div>', page)
    assert labels[:4] == [
        "unet_lr 1e-4, dim 16",
        "unet_lr 1e-4, dim 32",
        "unet_lr 5e-5, dim 16",
        "unet_lr 5e-5, dim 32",
    ]
    # per prompt: one row per run, one column per epoch, each image the run's own file
    images = _images(page)
    sample_grid = [name for _, name in images if "_e00000" in name]
    names = [p.name for p in (tmp_path / "out" / "sample").iterdir()]
    assert set(sample_grid) <= set(names)
    first_prompt = page.split('<h3 data-prompt="0">')[1].split('<h3 data-prompt="1">')[0]
    assert "seed 40" in first_prompt
    rows = first_prompt.split("<tr data-run=")[1:]
    assert len(rows) == 4
    for run_index, row in enumerate(rows):
        got = re.findall(r'data-name="([^"]+)"', row)
        point = sweep.points[run_index]
        assert got == [
            f"cmp-{point.label}_e{e:06d}_00_202612011{e:02d}000_40.png" for e in (1, 2, 3)
        ]
    # each embedded image is the file itself
    src, name = next((s, n) for s, n in images if n.startswith("cmp-unet_lr5e-5_dim32_e000002_01"))
    file = tmp_path / "out" / "sample" / name
    assert base64.b64decode(src.removeprefix("data:image/png;base64,")) == file.read_bytes()
    # loss per epoch: one line per run; the X/Y grid: the first setting across, the other down
    assert page.count('<svg class="chart"') == 1 or 'id="chart-compare-loss"' in page
    for label in labels[:4]:
        assert label in page.split('id="loss"')[1]
    xy = page.split('id="xy"')[1].split('id="samples"')[0]
    assert re.findall(r'<th class="x">([^<]+)</th>', xy)[:2] == ["1e-4", "5e-5"]
    assert re.findall(r'<tr><th class="row">([^<]+)</th>', xy)[:2] == ["16", "32"]
    assert "dim \\ unet_lr" in xy
    # sizes of every LoRA file
    files = page.split('id="files"')[1]
    assert files.count("<tr data-run=") == 4 * 4  # epochs 1, 2, the final file and its copy
    assert "3.8 MiB" in files  # point 3's files: 4,000,000 bytes


def test_run_folders_given_one_by_one_are_labelled_by_what_differs(tmp_path: Path) -> None:
    sweep = trained_sweep(tmp_path, grid=("network.dim=16,32",), epochs=2, prompts=1)
    data = gather_compare(list(sweep.run_dirs))
    assert data.keys == ("network.dim",)
    assert [r.label for r in data.runs] == ["dim 16", "dim 32"]
    assert [r.final_bytes for r in data.runs] == [1_000_000, 2_000_000]
    assert data.xy == ()  # one setting: no X/Y grid
    out = write_compare(list(sweep.run_dirs), output=tmp_path / "cmp.html")
    assert out == tmp_path / "cmp.html"


def test_differing_settings() -> None:
    plans = [
        {
            "network": {"dim": 16, "alpha": 8},
            "output": {"name": "a"},
            "launch": {"extra": {"x": 1}},
        },
        {
            "network": {"dim": 32, "alpha": 8},
            "output": {"name": "b"},
            "launch": {"extra": {"x": 2}},
        },
    ]
    assert differing_settings(plans) == ["network.dim", "launch.extra"]


def test_prompts_without_a_seed_are_said_to_compare_poorly(tmp_path: Path) -> None:
    sweep = trained_sweep(tmp_path, grid=("network.dim=16,32",), epochs=1, prompts=1)
    for run_dir in sweep.run_dirs:
        for image in (tmp_path / "out" / "sample").glob("*_40.png"):
            image.rename(image.with_name(image.name.removesuffix("_40.png") + ".png"))
        del run_dir
    data = gather_compare([sweep.path])
    (grid,) = data.prompts
    assert any("no fixed seed (add --d 42" in n for n in grid.notes)


def test_compare_needs_two_runs_or_a_sweep(tmp_path: Path) -> None:
    sweep = trained_sweep(tmp_path, grid=("network.dim=16,32",), epochs=1, prompts=1)
    with pytest.raises(UsageError, match="two run folders or more, or one sweep folder"):
        gather_compare([sweep.run_dirs[0]])
