"""lr-find.png: the adaptive optimizer's d*lr curve(s) and, once it settled, the flat band.

Drawn by the report's matplotlib charts (`kohya_plan.report.charts`, imported lazily there), so
lr-find's picture and the report's d·lr chart look alike.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from kohya_plan.report.charts import PALETTE, Band, Series, png_chart
from kohya_plan.workflows.lrfind.search import FLAT_TOLERANCE, TE_TAG, UNET_TAG

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kohya_plan.workflows.lrfind.search import Plateau

UNET_COLOR = PALETTE[0]
TE_COLOR = PALETTE[4]
BAND_COLOR = "#bbf7d0"


def dlr_chart(
    points: Sequence[tuple[int, float]],
    plateau: Plateau,
    te_points: Sequence[tuple[int, float]] = (),
) -> bytes:
    """PNG bytes: U-Net d*lr (and the text encoder's), the ±5 % band where it went flat."""
    series = [Series(UNET_TAG, points, UNET_COLOR, 2.2, markers=False)]
    if te_points:
        # Dashed: where both curves are the same, the U-Net one shows through.
        series.append(Series(TE_TAG, te_points, TE_COLOR, 2.0, dash=(5, 3), markers=False))
    band = None
    if plateau.settled and plateau.since_step is not None:
        tol = FLAT_TOLERANCE * plateau.value
        band = Band(
            float(plateau.since_step),
            plateau.value - tol,
            plateau.value + tol,
            f"flat: {plateau.value:.3g} ±{FLAT_TOLERANCE:.0%} from step {plateau.since_step}",
            BAND_COLOR,
        )
        title = f"lr-find: {UNET_TAG} settled at {plateau.value:.3g}"
    else:
        title = (
            f"lr-find: {UNET_TAG} did not settle in {plateau.last_step} steps "
            f"(last value {plateau.value:.3g})"
        )
    return png_chart(series, x_label="step", y_label="d × lr", band=band, title=title)


def preload() -> threading.Thread:
    """Import matplotlib and tomlkit in the background while the search run trains.

    Importing them costs about 0.4 s; done during the minutes of training, it leaves only the
    drawing and the plan's rewriting for after it (lr-find's overhead target is 1 s).
    """

    def load() -> None:
        try:
            import matplotlib.backends.backend_agg
            import matplotlib.figure  # noqa: F401
            import tomlkit  # noqa: F401
        except ImportError:  # reported where they are used
            return

    thread = threading.Thread(target=load, name="kohya-plan-preload", daemon=True)
    thread.start()
    return thread
