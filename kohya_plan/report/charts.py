"""Line charts drawn with matplotlib: inline SVG for the report, PNG for lr-find.

matplotlib is imported inside the functions that draw (it takes a third of a second to import;
`import kohya_plan.cli` must not pay for it). Only its object API is used (`Figure`, no pyplot),
so no global backend is chosen and nothing is left open: `savefig` renders SVG with matplotlib's
SVG backend and PNG with Agg. Settings go through `rc_context`, never the global rcParams.

Very long series are thinned before drawing (`thin`: each bucket keeps its first, lowest, highest
and last point), so a 10,000-step run draws as fast as a 1,600-step one and keeps its spikes.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


MAX_DRAWN_POINTS = 1600
# Markers on line charts up to this many points.
MAX_MARKERS = 40
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#64748b")
_INK, _MUTED, _GRID, _AXIS = "#374151", "#6b7280", "#e5e7eb", "#9ca3af"
# What matplotlib would write into each SVG about itself; the report is about the run.
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
_SVG_PROLOG = re.compile(r"\A.*?<svg\b[^>]*>", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart."""

    name: str
    points: Sequence[tuple[float, float]]
    color: str
    width: float = 2.0
    dash: tuple[float, float] | None = None  # (on, off) in points
    opacity: float = 1.0
    markers: bool | None = None  # None: when few points
    labels: bool = False  # value labels above the markers


@dataclass(frozen=True, slots=True)
class Band:
    """A shaded horizontal band from `x_from` to the right edge (lr-find's plateau)."""

    x_from: float
    low: float
    high: float
    label: str
    color: str = "#bbf7d0"


@dataclass(frozen=True, slots=True)
class SeriesFacts:
    """What the chart's table of values says about one series (points are (x, y))."""

    name: str
    color: str
    points: int  # finite points in the data
    drawn: int  # points drawn after thinning
    first: tuple[float, float]
    last: tuple[float, float]
    lowest: tuple[float, float]
    highest: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart of the report: its inline SVG and the facts of its series."""

    chart_id: str
    title: str
    x_label: str
    svg: str
    series: tuple[SeriesFacts, ...]


@contextmanager
def _style(salt: str | None = None) -> Iterator[None]:
    """The charts' look, whatever the user's matplotlibrc says (matplotlib's defaults, then
    ours), for the `with` block only."""
    import matplotlib
    import matplotlib.style

    with (
        matplotlib.style.context("default"),
        matplotlib.rc_context(
            {
                "font.family": "sans-serif",
                # Ships with matplotlib, so the layout is measured with the font the SVG names
                # (a browser without it uses its own sans-serif).
                "font.sans-serif": ["DejaVu Sans"],
                "font.size": 12,
                # Text stays text in the SVG: searchable, selectable, and a tenth of the size of
                # glyph outlines.
                "svg.fonttype": "none",
                # Element ids unique to each chart: several SVGs share one page.
                "svg.hashsalt": salt,
                # Series are thinned already: every point left is drawn (no second, silent
                # simplification).
                "path.simplify": False,
                "axes.edgecolor": _AXIS,
                "axes.labelcolor": _INK,
                "axes.labelweight": "bold",
                "xtick.color": _MUTED,
                "ytick.color": _MUTED,
                "xtick.labelcolor": _INK,
                "ytick.labelcolor": _INK,
            }
        ),
    ):
        yield


def finite(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points whose x and y are both finite numbers."""
    return [(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def value_label(value: float) -> str:
    """A data value as the report prints it (4 significant digits)."""
    return f"{value:.4g}"


def _decimals(step: float) -> int:
    for digits in range(12):
        if abs(round(step, digits) - step) <= abs(step) * 1e-6:
            return digits
    return 12


def tick_label(value: float, step: float) -> str:
    """A tick's text, with just enough digits for the ticks' spacing ('2e-5' for tiny values,
    so no axis needs a separate ×10ⁿ note)."""
    if abs(value) < abs(step) * 1e-6:
        return "0"
    if abs(step) < 1e-3 or abs(value) >= 1e5:
        exponent = math.floor(math.log10(abs(value)))
        mantissa = value / 10**exponent
        digits = min(_decimals(step / 10**exponent), 6)
        text = f"{mantissa:.{digits}f}"
        if abs(float(text)) >= 10:  # 9.9999…e-5 is 1e-4
            exponent += 1
            text = f"{value / 10**exponent:.{digits}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return f"{text}e{exponent}"
    return f"{value:.{min(_decimals(step), 8)}f}"


def x_text(value: float) -> str:
    """A step or epoch number without a trailing '.0'."""
    return str(int(value)) if value == int(value) else f"{value:g}"


def thin(
    points: Sequence[tuple[float, float]], limit: int = MAX_DRAWN_POINTS
) -> list[tuple[float, float]]:
    """At most about `limit` points, keeping each bucket's first, lowest, highest and last."""
    if len(points) <= limit:
        return list(points)
    buckets = max(limit // 4, 1)
    size = len(points) / buckets
    out: list[tuple[float, float]] = []
    for b in range(buckets):
        chunk = points[int(b * size) : int((b + 1) * size)]
        if not chunk:
            continue
        keep = {0, len(chunk) - 1}
        keep.add(min(range(len(chunk)), key=lambda i: chunk[i][1]))
        keep.add(max(range(len(chunk)), key=lambda i: chunk[i][1]))
        out += [chunk[i] for i in sorted(keep)]
    return out


def plain(text: str) -> str:
    """Text for matplotlib as it is: a '$' would otherwise start mathtext."""
    return text.replace("$", r"\$")


def _facts(series: Series, points: list[tuple[float, float]], drawn: int) -> SeriesFacts:
    return SeriesFacts(
        name=series.name,
        color=series.color,
        points=len(points),
        drawn=drawn,
        first=points[0],
        last=points[-1],
        lowest=min(points, key=lambda p: p[1]),
        highest=max(points, key=lambda p: p[1]),
    )


def _draw(
    ax: Axes,
    chart_id: str,
    drawn: Sequence[tuple[Series, list[tuple[float, float]]]],
    *,
    x_label: str,
    y_label: str,
    integer_x: bool,
    y_from_zero: bool,
    marks: Sequence[tuple[float, str]],
    band: Band | None,
) -> list[int]:
    """Draw the series on `ax`; returns how many points of each were drawn."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    counts = []
    for index, (series, points) in enumerate(drawn):
        shown = thin(points)
        counts.append(len(shown))
        markers = series.markers if series.markers is not None else len(points) <= MAX_MARKERS
        ax.plot(
            [x for x, _ in shown],
            [y for _, y in shown],
            label=plain(series.name),
            color=series.color,
            linewidth=series.width,
            alpha=series.opacity,
            linestyle=(0, series.dash) if series.dash else "-",
            marker="o" if markers else None,
            markersize=5,
            gid=f"{chart_id}-series-{index}",
            zorder=3,
        )
        if series.labels:
            for n, (x, y) in enumerate(points):
                ax.annotate(
                    value_label(y),
                    (x, y),
                    textcoords="offset points",
                    xytext=(0, 8),
                    ha="center",
                    fontsize=11,
                    fontweight="bold",
                    color=series.color,
                    gid=f"{chart_id}-value-{index}-{n}",
                )
    xs = [x for _, pts in drawn for x, _ in pts]
    ys = [y for _, pts in drawn for _, y in pts]
    if band is not None:
        ys += [band.low, band.high]
        ax.fill_between(
            [band.x_from, max(xs)],
            band.low,
            band.high,
            color=band.color,
            linewidth=0,
            label=plain(band.label),
            zorder=1,
        )
    for x_value, text in marks:
        if min(xs) < x_value < max(xs):
            ax.axvline(x_value, color="#cbd5e1", linewidth=1, linestyle=(0, (3, 4)), zorder=2)
            ax.annotate(
                plain(text),
                (x_value, 1),
                xycoords=("data", "axes fraction"),
                textcoords="offset points",
                xytext=(-3, -4),
                ha="right",
                va="top",
                fontsize=10,
                color="#94a3b8",
            )
    if integer_x or all(x == int(x) for x in xs):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if integer_x:
        ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    else:
        ax.margins(x=0.01)
    top = max(ys)
    low = min(0.0, min(ys)) if y_from_zero else min(ys)
    span = (top - low) or abs(top) or 1.0
    room = 0.16 if any(s.labels for s, _ in drawn) else 0.05
    ax.set_ylim(low - (0 if y_from_zero and low == 0 else span * 0.05), top + span * room)

    def y_tick(value: float, _: int | None) -> str:
        ticks = sorted(ax.yaxis.get_majorticklocs())
        step = min((b - a for a, b in itertools.pairwise(ticks)), default=1.0)
        return tick_label(value, step or 1.0)

    ax.yaxis.set_major_formatter(FuncFormatter(y_tick))
    ax.set_xlabel(plain(x_label))
    ax.set_ylabel(plain(y_label))
    ax.grid(True, color=_GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        ncols=min(len(drawn) + (band is not None), 4),
        frameon=False,
        fontsize=11.5,
        handlelength=2.6,
        borderaxespad=0.2,
    )
    return counts


def _margins(figure: Figure, width: int, height: int, *, title: bool = False) -> None:
    """Fixed margins (room for tick labels, axis labels and the legend above), in points so
    that they grow with the fonts: a third of the drawing time constrained layout would take
    to find about the same."""
    scale = figure.dpi / 72
    left, right, top, bottom = (scale * m for m in (82, 24, 44 + 16 * title, 50))
    figure.subplots_adjust(
        left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height
    )


def line_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    integer_x: bool = False,
    y_from_zero: bool = False,
    marks: Sequence[tuple[float, str]] = (),
    width: int = 960,
    height: int = 320,
) -> Chart | None:
    """An inline SVG line chart with axes, axis labels, a legend and optional value labels;
    None when no series has a finite point."""
    drawn = [(s, finite(s.points)) for s in series]
    drawn = [(s, pts) for s, pts in drawn if pts]
    if not drawn:
        return None
    with _style(chart_id):
        from matplotlib.figure import Figure

        figure = Figure(figsize=(width / 72, height / 72), dpi=72)
        _margins(figure, width, height)
        counts = _draw(
            figure.add_subplot(),
            chart_id,
            drawn,
            x_label=x_label,
            y_label=y_label,
            integer_x=integer_x,
            y_from_zero=y_from_zero,
            marks=marks,
            band=None,
        )
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata=_NO_METADATA)
    svg = _inline_svg(out.getvalue(), chart_id, title, width, height)
    facts = tuple(_facts(s, pts, n) for (s, pts), n in zip(drawn, counts, strict=True))
    return Chart(chart_id, title, x_label, svg, facts)


def _inline_svg(text: str, chart_id: str, title: str, width: int, height: int) -> str:
    """matplotlib's SVG document as an element of the page: no XML prolog or DOCTYPE, our own
    root (id, class, accessible title), and sized by the page's CSS."""
    from xml.sax.saxutils import escape, quoteattr

    body = _SVG_PROLOG.sub("", text, count=1)
    root = (
        f'<svg class="chart" id={quoteattr(chart_id)} viewBox="0 0 {width} {height}" '
        f'role="img" aria-label={quoteattr(title)} xmlns="http://www.w3.org/2000/svg" '
        f'xmlns:xlink="http://www.w3.org/1999/xlink"><title>{escape(title)}</title>'
    )
    return root + body.strip()


def png_chart(
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    band: Band | None = None,
    title: str = "",
    width: int = 1000,
    height: int = 500,
) -> bytes:
    """A PNG line chart (width × height pixels) with an optional shaded band."""
    drawn = [(s, finite(s.points)) for s in series]
    drawn = [(s, pts) for s, pts in drawn if pts]
    with _style():
        from matplotlib.figure import Figure

        figure = Figure(figsize=(width / 100, height / 100), dpi=100)
        _margins(figure, width, height, title=bool(title))
        ax = figure.add_subplot()
        if drawn:
            _draw(
                ax,
                "png",
                drawn,
                x_label=x_label,
                y_label=y_label,
                integer_x=False,
                y_from_zero=False,
                marks=(),
                band=band,
            )
        else:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        if title:
            figure.suptitle(plain(title), fontsize=13, color=_INK)
        out = io.BytesIO()
        figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
