"""Line charts as inline SVG for the report (pure)."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


MAX_DRAWN_POINTS = 1600
# Markers on line charts up to this many points.
MAX_MARKERS = 40
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#64748b")


# --- charts (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart."""

    name: str
    points: Sequence[tuple[float, float]]
    color: str
    width: float = 2.0
    dash: str | None = None
    opacity: float = 1.0
    markers: bool | None = None  # None: when few points
    labels: bool = False  # value labels above the markers


def _finite(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[float, float, list[float]]:
    """A rounded axis range covering lo..hi and its ticks (steps of 1, 2, 2.5 or 5 × 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    n = round((end - start) / step)
    ticks = [start + i * step for i in range(n + 1)]
    return start, end, ticks


def _decimals(step: float) -> int:
    for digits in range(12):
        if abs(round(step, digits) - step) <= abs(step) * 1e-6:
            return digits
    return 12


def tick_label(value: float, step: float) -> str:
    """A tick's text, with just enough digits for the ticks' spacing."""
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


def value_label(value: float) -> str:
    """A data value as the report prints it (4 significant digits)."""
    return f"{value:.4g}"


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


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


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
) -> str:
    """An SVG line chart with axes, ticks, axis labels, a legend and optional value labels."""
    drawn = [(s, _finite(s.points)) for s in series]
    drawn = [(s, pts) for s, pts in drawn if pts]
    if not drawn:
        return ""
    xs = [x for _, pts in drawn for x, _ in pts]
    ys = [y for _, pts in drawn for _, y in pts]
    left, right, top, bottom = 78, 24, 44, 52
    pw, ph = width - left - right, height - top - bottom
    if integer_x:
        x_lo, x_hi = min(xs) - 0.5, max(xs) + 0.5
        span = max(xs) - min(xs)
        if span <= 24:
            x_ticks = [float(v) for v in range(int(min(xs)), int(max(xs)) + 1)]
        else:
            _, _, candidates = nice_ticks(min(xs), max(xs), 8)
            x_ticks = [t for t in candidates if min(xs) <= t <= max(xs) and t == int(t)]
        x_step = 1.0
    else:
        x_lo, x_hi = min(xs), max(xs)
        if x_hi == x_lo:
            x_lo, x_hi = x_lo - 1, x_hi + 1
        _, _, x_ticks = nice_ticks(x_lo, x_hi, 8)
        x_ticks = [t for t in x_ticks if x_lo - 1e-9 <= t <= x_hi + 1e-9]
        x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
        if x_step < 1 and all(x == int(x) for x in xs):  # steps: no ticks between them
            x_ticks = [float(v) for v in range(math.ceil(x_lo), math.floor(x_hi) + 1)]
            x_step = 1.0
    low = min(0.0, min(ys)) if y_from_zero else min(ys)
    y_lo, y_hi, y_ticks = nice_ticks(low, max(ys), 5)
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
    has_labels = any(s.labels for s, _ in drawn)
    if has_labels:  # room above the highest point for its label
        y_hi += (y_hi - y_lo) * 0.12

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * pw

    def py(y: float) -> float:
        return top + (1 - (y - y_lo) / (y_hi - y_lo)) * ph

    out = [
        f'<svg class="chart" id="{esc(chart_id)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}" '
        f'data-title="{esc(title)}">',
        f"<title>{esc(title)}</title>",
        f'<rect class="plot" x="{left}" y="{top}" width="{pw}" height="{ph}"/>',
    ]
    for t in y_ticks:
        y = py(t)
        out.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"{esc(tick_label(t, y_step))}</text>"
        )
    for t in x_ticks:
        x = px(t)
        text = str(int(t)) if integer_x or x_step >= 1 else tick_label(t, x_step)
        out.append(
            f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}"/>'
            f'<text class="tick" x="{x:.1f}" y="{top + ph + 18}" text-anchor="middle">'
            f"{esc(text)}</text>"
        )
    for x_value, text in marks:
        if x_lo < x_value < x_hi:
            x = px(x_value)
            out.append(
                f'<line class="mark" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}"/>'
                f'<text class="mark-label" x="{x - 3:.1f}" y="{top + 12}" text-anchor="end">'
                f"{esc(text)}</text>"
            )
    out.append(
        f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}"/>'
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}"/>'
        f'<text class="axis-label" x="{left + pw / 2:.1f}" y="{height - 10}" '
        f'text-anchor="middle">{esc(x_label)}</text>'
        f'<text class="axis-label" transform="translate(16 {top + ph / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{esc(y_label)}</text>'
    )
    for s, pts in drawn:
        shown = thin(pts)
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in shown)
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(
            f'<polyline class="series" data-series="{esc(s.name)}" data-points="{len(pts)}" '
            f'data-drawn="{len(shown)}" fill="none" stroke="{s.color}" '
            f'stroke-width="{s.width}" stroke-opacity="{s.opacity}" stroke-linejoin="round"'
            f'{dash} points="{coords}"/>'
        )
        markers = s.markers if s.markers is not None else len(pts) <= MAX_MARKERS
        if markers:
            out.append(f'<g class="markers" data-series="{esc(s.name)}">')
            for x, y in pts:
                label = value_label(y)
                xt = str(int(x)) if integer_x or x == int(x) else f"{x:g}"
                out.append(
                    f'<circle class="point" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" '
                    f'fill="{s.color}" data-x="{xt}" data-y="{y!r}">'
                    f"<title>{esc(s.name)}: {x_label} {xt}: {label}</title></circle>"
                )
                if s.labels:
                    out.append(
                        f'<text class="value" x="{px(x):.1f}" y="{py(y) - 9:.1f}" '
                        f'text-anchor="middle" fill="{s.color}">{esc(label)}</text>'
                    )
            out.append("</g>")
    # legend, left to right above the plot
    x = float(left)
    for s, _ in drawn:
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(
            f'<g class="legend"><line x1="{x:.0f}" y1="{top - 18}" x2="{x + 22:.0f}" '
            f'y2="{top - 18}" stroke="{s.color}" stroke-width="3"{dash}/>'
            f'<text x="{x + 28:.0f}" y="{top - 14}">{esc(s.name)}</text></g>'
        )
        x += 44 + 7.0 * len(s.name)
    out.append("</svg>")
    return "".join(out)
