"""Generate the small example dataset under examples/tutorial/ (run once; the result is committed).

The images are simple procedural pictures (no third-party content): 16 square and 8 portrait
PNGs in the tutorial's `N_name` layout, each with a .txt caption that starts with the trigger
word. Usage: python scripts/make_example_dataset.py [OUT_DIR]
"""

from __future__ import annotations

import random
import struct
import sys
import zlib
from pathlib import Path

TAGS = [
    "smiling",
    "red hair",
    "blue eyes",
    "school uniform",
    "outdoors",
    "upper body",
    "looking at viewer",
    "long hair",
    "ponytail",
    "hat",
    "night",
    "cherry blossoms",
]


def png(width: int, height: int, pixel_rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + row for row in pixel_rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def picture(width: int, height: int, seed: int) -> bytes:
    rng = random.Random(seed)
    top = [rng.randrange(40, 220) for _ in range(3)]
    bottom = [rng.randrange(40, 220) for _ in range(3)]
    cx, cy, r = width // 2, int(height * rng.uniform(0.35, 0.5)), min(width, height) // 5
    face = bytes([rng.randrange(200, 256), rng.randrange(170, 220), rng.randrange(150, 200)])
    rows = []
    for y in range(height):
        t = y / (height - 1)
        bg = bytes(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=False))
        row = bytearray(bg * width)
        dy = y - cy
        if abs(dy) < r:
            half = int((r * r - dy * dy) ** 0.5)
            row[(cx - half) * 3 : (cx + half) * 3] = face * (2 * half)
        rows.append(bytes(row))
    return png(width, height, rows)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/tutorial/datasets/xunxian/5_xunxian")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    for index in range(24):
        width, height = (512, 512) if index < 16 else (512, 768)
        name = f"xunxian_{index + 1:02d}"
        (out / f"{name}.png").write_bytes(picture(width, height, index))
        tags = rng.sample(TAGS, 4)
        (out / f"{name}.txt").write_text(
            "xunxian, 1girl, " + ", ".join(tags) + "\n", encoding="utf-8"
        )
    print(f"wrote 24 images and captions to {out}")


if __name__ == "__main__":
    main()
