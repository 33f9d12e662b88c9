"""report.html in a real browser: headless Chromium renders the charts and decodes every image.

Skipped where Chromium is missing (Debian/Ubuntu: `apt-get install chromium`). The page's own
script sets, on load, `data-images-loaded` (images with naturalWidth > 0) and `data-charts`
(SVG charts) on <body>; `--dump-dom` prints the DOM after load, so the test reads them there.
A screenshot of the page is kept in tests/artifacts/ (git-ignored) to look at.
"""

from __future__ import annotations

import re
import struct
import zlib
from typing import TYPE_CHECKING

from browser import ARTIFACTS, MARKS, body_attrs, chromium
from helpers import TESTS
from test_report import (
    finish,
    lora,
    make_run_dir,
    run1_log,
    run1_scalars,
    write_events,
)

from kohya_plan.report import write_report

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = MARKS


def gradient_png(path: Path, size: int, hue: int) -> None:
    """An RGB PNG with a gradient (looks more like a sample than a solid square)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = []
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            row += bytes(((x * 255 // size + hue) % 256, (y * 255 // size) % 256, (hue * 3) % 256))
        rows.append(bytes(row))
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 6))
        + chunk(b"IEND", b"")
    )


def png_colours(path: Path, limit: int = 10_000) -> int:
    """How many distinct colours a screenshot has (8-bit RGB/RGBA PNG, every filter type)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8
            channels = {2: 3, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 255
        if y % 8 == 0:
            for x in range(0, stride, channels * 4):
                colours.add(bytes(line[x : x + 3]))
            if len(colours) >= limit:
                break
        previous = line
    return len(colours)


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path)
    out = tmp_path / "out"
    write_events(run_dir / "logs" / "20261126230341" / "network_train", run1_scalars())
    (out / "sample").mkdir(parents=True)
    count = 0
    for epoch in (0, 1, 2):
        for index in (0, 1):
            name = f"testlora_e{epoch:06d}_{index:02d}_20261127000127_{7 + index}.png"
            gradient_png(out / "sample" / name, 128, 70 * epoch + 20 * index)
            count += 1
    lora(out, "testlora-000001.safetensors", 12_345)
    lora(out, "testlora.safetensors", 23_456)
    finish(run_dir, run1_log())
    report = write_report(run_dir)

    dom = chromium(tmp_path / "profile", "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    attrs = body_attrs(dom.stdout)
    assert attrs["data-charts"] == "3"  # loss per step, loss per epoch, learning rate
    assert attrs["data-images"] == str(count)
    assert attrs["data-images-loaded"] == str(count)  # every image decoded (naturalWidth > 0)

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report_full.png"
    shot.unlink(missing_ok=True)
    result = chromium(
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1400,2400",
        "--hide-scrollbars",
        report.as_uri(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file()
    assert shot.stat().st_size > 20_000
    assert png_colours(shot, limit=200) > 50  # text, charts and images: not a blank page

    # Above the embedding limit the images are linked beside the report: they still load.
    linked = write_report(run_dir, embed_limit=0)
    assert "data:image/png" not in linked.read_text(encoding="utf-8")
    dom = chromium(tmp_path / "profile", "--dump-dom", linked.as_uri())
    assert body_attrs(dom.stdout)["data-images-loaded"] == str(count)


def test_failed_run_renders_in_chromium(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, sampling={})
    logs = TESTS / "fixtures" / "logs"
    log = (logs / "run7_fail_model.stdout.txt").read_bytes()
    log += (logs / "run7_fail_model.stderr.txt").read_bytes()
    finish(run_dir, log, exit_status=1)
    report = write_report(run_dir)
    dom = chromium(tmp_path / "profile", "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    attrs = body_attrs(dom.stdout)
    assert attrs["data-outcome"] == "failed"
    assert attrs["data-charts"] == "0"
    assert attrs["data-images-loaded"] == "0"
    assert "Cause: missing_model" in re.sub(r"<[^>]+>", "", dom.stdout)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report_failed.png"
    result = chromium(
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1400,1600",
        "--hide-scrollbars",
        report.as_uri(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert png_colours(shot, limit=200) > 10
