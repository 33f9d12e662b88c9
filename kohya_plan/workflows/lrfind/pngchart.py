"""A line chart as a PNG, with the standard library only (zlib): axes, grid, a curve, an
optional highlighted band, and numeric labels drawn with a tiny bitmap font."""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

Colour = tuple[int, int, int]

# 3x5 bitmap glyphs (rows top to bottom, 3 bits each) for the characters labels need.
_GLYPHS = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 2, 2),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), ".": (0, 0, 0, 0, 2), "-": (0, 0, 7, 0, 0),
    "e": (0, 7, 7, 4, 7), "+": (0, 2, 7, 2, 0), " ": (0, 0, 0, 0, 0),
}  # fmt: skip


class Canvas:
    """An RGB pixel buffer."""

    def __init__(self, width: int, height: int, background: Colour = (255, 255, 255)) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def dot(self, x: int, y: int, colour: Colour) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i : i + 3] = bytes(colour)

    def rect(self, x0: int, y0: int, x1: int, y1: int, colour: Colour) -> None:
        for y in range(max(0, y0), min(self.height, y1)):
            start = (y * self.width + max(0, x0)) * 3
            count = max(0, min(self.width, x1) - max(0, x0))
            self.pixels[start : start + count * 3] = bytes(colour) * count

    def line(self, x0: int, y0: int, x1: int, y1: int, colour: Colour, width: int = 2) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            x = round(x0 + (x1 - x0) * i / steps)
            y = round(y0 + (y1 - y0) * i / steps)
            self.rect(
                x - width // 2, y - width // 2, x + (width + 1) // 2, y + (width + 1) // 2, colour
            )

    def text(self, x: int, y: int, text: str, colour: Colour, scale: int = 2) -> None:
        for n, char in enumerate(text):
            rows = _GLYPHS.get(char, _GLYPHS[" "])
            for r, bits in enumerate(rows):
                for c in range(3):
                    if bits & (4 >> c):
                        px = x + (n * 4 + c) * scale
                        self.rect(px, y + r * scale, px + scale, y + (r + 1) * scale, colour)

    def png(self) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        stride = self.width * 3
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height)
        )
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b"")
        )


def line_chart(
    series: Sequence[tuple[Sequence[tuple[float, float]], Colour]],
    *,
    band: tuple[float, float, float] | None = None,
    width: int = 800,
    height: int = 400,
) -> bytes:
    """PNG bytes of one or more (x, y) series; `band` = (x_from, y_low, y_high) shaded."""
    canvas = Canvas(width, height)
    left, right, top, bottom = 90, 20, 20, 40
    xs = [x for points, _ in series for x, _ in points]
    ys = [y for points, _ in series for _, y in points if math.isfinite(y)]
    if not xs or not ys:
        return canvas.png()
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if band is not None:
        y0, y1 = min(y0, band[1]), max(y1, band[2])
    if y1 == y0:
        y0, y1 = y0 - abs(y0) * 0.1 - 1e-12, y1 + abs(y1) * 0.1 + 1e-12
    x1 = x1 if x1 > x0 else x0 + 1

    def px(x: float) -> int:
        return round(left + (x - x0) / (x1 - x0) * (width - left - right))

    def py(y: float) -> int:
        return round(height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom))

    grid, axis, ink = (230, 230, 230), (60, 60, 60), (40, 40, 40)
    if band is not None:
        canvas.rect(px(band[0]), py(band[2]), width - right, py(band[1]) + 1, (220, 240, 220))
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        canvas.line(left, py(y), width - right, py(y), grid, 1)
        canvas.text(4, py(y) - 5, f"{y:.2e}", ink)
    for i in range(5):
        x = x0 + (x1 - x0) * i / 4
        canvas.line(px(x), top, px(x), height - bottom, grid, 1)
        canvas.text(px(x) - 8, height - bottom + 10, f"{x:.0f}", ink)
    canvas.line(left, top, left, height - bottom, axis, 2)
    canvas.line(left, height - bottom, width - right, height - bottom, axis, 2)
    for points, colour in series:
        clean = [(x, y) for x, y in points if math.isfinite(y)]
        for (xa, ya), (xb, yb) in itertools.pairwise(clean):
            canvas.line(px(xa), py(ya), px(xb), py(yb), colour, 3)
        if len(clean) == 1:
            canvas.rect(
                px(clean[0][0]) - 3,
                py(clean[0][1]) - 3,
                px(clean[0][0]) + 3,
                py(clean[0][1]) + 3,
                colour,
            )
    return canvas.png()
