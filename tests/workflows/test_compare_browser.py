"""compare.html in a real browser: headless Chromium decodes every image and draws the chart.

Skipped where Chromium is missing (Debian/Ubuntu: `apt-get install chromium`). The page's script
sets `data-images-loaded`, `data-images` and `data-charts` on <body> once loaded; `--dump-dom`
prints the DOM after load. A screenshot is kept in tests/artifacts/compare_sweep.png (git-ignored).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from browser import ARTIFACTS, MARKS, body_attrs, chromium
from compare_lab import trained_sweep

from kohya_plan.workflows.compare import write_compare

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = MARKS


def test_the_comparison_renders_in_chromium(tmp_path: Path) -> None:
    sweep = trained_sweep(tmp_path / "lab", epochs=3, prompts=2, size=96)
    page = write_compare([sweep.path])
    dom = chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    attrs = body_attrs(dom.stdout)
    # 4 runs × 3 epochs × 2 prompts in the sample grids + 2 prompts × 4 in the X/Y grid
    assert attrs["data-images"] == str(4 * 3 * 2 + 2 * 4)
    assert attrs["data-images-loaded"] == attrs["data-images"]
    assert attrs["data-charts"] == "1"  # the loss per epoch, one line per run
    assert attrs["data-runs"] == "4"

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "compare_sweep.png"
    shot.unlink(missing_ok=True)
    result = chromium(
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1400,2600",
        "--hide-scrollbars",
        page.as_uri(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file()
    assert shot.stat().st_size > 30_000  # images, a chart and tables: not a blank page
