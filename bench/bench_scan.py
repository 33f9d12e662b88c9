"""Benchmark kohya_plan.inputs.scan.scan_folder on 100,000 small images with captions.

Usage: python bench/bench_scan.py [--dir DIR] [--images N] [--keep]

Generates N tiny PNG/JPEG files (5% of the JPEGs carry a 20 KB EXIF block, so their
frame header lies beyond the first read) plus one caption each, spread over four
``N_name`` folders, in a temporary directory (or DIR, e.g. bench/data/, which is
gitignored). The timing runs in a fresh child process so that its peak RSS is the
scan's own: one warm-up pass, then the median of three timed passes.
Target: >= 20,000 images/s warm, <= 300 MB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

FOLDERS = ("10_sks dog", "5_sks cat", "3_style", "1_misc")
SIZES = ((512, 512), (768, 512), (512, 768), (1024, 1024), (640, 480), (1920, 1080))


def png_bytes(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def jpeg_bytes(w: int, h: int, exif: int = 0) -> bytes:
    def seg(marker: int, payload: bytes) -> bytes:
        return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload

    out = b"\xff\xd8" + seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    if exif:
        out += seg(0xE1, b"Exif\x00\x00" + b"\x00" * exif)
    out += seg(0xDB, b"\x00" + bytes(64))
    out += seg(0xC0, struct.pack(">BHHB", 8, h, w, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01")
    return out + b"\xff\xd9"


def generate(root: Path, n: int) -> None:
    marker = root / ".bench-complete"
    if marker.exists() and marker.read_text() == str(n):
        return
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    payloads = {}
    for w, h in SIZES:
        payloads[("png", w, h)] = png_bytes(w, h)
        payloads[("jpg", w, h)] = jpeg_bytes(w, h)
        payloads[("jpgx", w, h)] = jpeg_bytes(w, h, exif=20_000)
    per_folder = -(-n // len(FOLDERS))
    made = 0
    for folder in FOLDERS:
        d = root / folder
        d.mkdir()
        for i in range(per_folder):
            if made == n:
                break
            w, h = SIZES[i % len(SIZES)]
            kind = "png" if i % 2 else ("jpgx" if i % 40 == 0 else "jpg")
            ext = "png" if kind == "png" else "jpg"
            (d / f"img_{i:06d}.{ext}").write_bytes(payloads[(kind, w, h)])
            (d / f"img_{i:06d}.txt").write_text(
                f"{folder.split('_', 1)[1]}, tag{i % 97}, tag{i % 13}, outdoors, detailed\n"
            )
            made += 1
    marker.write_text(str(n))


def scan_only(root: Path) -> dict[str, float]:
    from kohya_plan.inputs.scan import scan_folder

    folders = [root / f for f in FOLDERS]

    def one_pass() -> int:
        total = 0
        for f in folders:
            result = scan_folder(f, ".txt")
            total += result.n_images
        return total

    n = one_pass()  # warms the page and dentry caches
    times = []
    cpu = []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        assert one_pass() == n
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024
    return {
        "images": n,
        "median_s": med,
        "images_per_s": n / med,
        "images_per_cpu_s": n / statistics.median(cpu),
        "peak_rss_mb": rss_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated temp dir")
    parser.add_argument("--scan-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.scan_only:
        print(json.dumps(scan_only(args.dir)))
        return

    tmp = None
    root = args.dir
    if root is None:
        tmp = tempfile.mkdtemp(prefix="kohya-plan-bench-")
        root = Path(tmp)
    try:
        t0 = time.perf_counter()
        generate(root, args.images)
        print(f"data: {root} ({args.images} images, generated in {time.perf_counter() - t0:.1f}s)")
        out = subprocess.run(
            [sys.executable, __file__, "--scan-only", "--dir", str(root)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        ).stdout
        r = json.loads(out)
        print(
            f"scan_folder: {r['images']} images in {r['median_s']:.3f}s (median of 3, warm)"
            f" = {r['images_per_s']:,.0f} images/s"
            f" ({r['images_per_cpu_s']:,.0f} per CPU-second); peak RSS {r['peak_rss_mb']:.1f} MB"
        )
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
