"""Benchmark the deep check (kohya_plan.inputs.decode.deep_check) on a few thousand real images.

Usage: python bench/bench_deep_check.py [--dir DIR] [--images N] [--keep]

Generates N real images (Pillow: 60 % JPEG quality 90, 40 % PNG, at the sizes LoRA data sets
use, 512-1024 px, with detail so that decoding is real work; 1 % cut short) in a temporary
folder (or DIR), then times, each in a fresh child process:

* ``check --deep``: every image decoded, on 1 thread and on as many as the CPUs (the default);
* a launch after that: every verdict from the cache (nothing changed);
* for comparison only, a process pool of the same size (kohya-plan itself uses threads: only
  ``kohya_plan.run`` starts processes).

Prints images/s for each. Target: the default (a thread per CPU) at least 1.3 times one
thread on 2 CPUs, no slower than the process pool by more than a quarter, and a cached pass
at 10,000 images/s or more.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = ((512, 512), (768, 512), (512, 768), (1024, 1024), (832, 1216), (1216, 832))


def generate(root: Path, n: int) -> list[str]:
    from PIL import Image, ImageFilter

    marker = root / ".bench-complete"
    if marker.exists() and marker.read_text() == str(n):
        return sorted(p.name for p in root.iterdir() if p.suffix in (".png", ".jpg"))
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rng = random.Random(7)
    bases = {}
    for w, h in SIZES:
        noise = Image.effect_noise((w, h), 40).convert("RGB")
        bases[(w, h)] = Image.merge(
            "RGB",
            [
                noise.getchannel(0),
                noise.getchannel(1).rotate(90, expand=False),
                noise.getchannel(2),
            ],
        ).filter(ImageFilter.GaussianBlur(2))
    names = []
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        ext = "png" if i % 5 < 2 else "jpg"
        name = f"img_{i:05d}.{ext}"
        image = bases[(w, h)].rotate(rng.randint(0, 3) * 90) if w == h else bases[(w, h)]
        if ext == "png":
            image.save(root / name, compress_level=6)
        else:
            image.save(root / name, quality=90)
        if i % 100 == 99:
            data = (root / name).read_bytes()
            (root / name).write_bytes(data[: len(data) // 2])
        names.append(name)
    marker.write_text(str(n))
    return names


def _child(root: Path, mode: str, workers: int, cache: Path) -> dict[str, float]:
    names = sorted(p.name for p in root.iterdir() if p.suffix in (".png", ".jpg"))
    if mode == "process":
        import warnings
        from concurrent.futures import ProcessPoolExecutor

        from kohya_plan.inputs.decode import decode_problem

        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        with ProcessPoolExecutor(workers) as pool:
            found = list(pool.map(decode_problem, [str(root / n) for n in names], chunksize=16))
        seconds = time.perf_counter() - t0
        bad = sum(p is not None for p in found)
        return {"images": len(names), "bad": bad, "seconds": seconds}
    from kohya_plan.inputs.decode import deep_check

    t0 = time.perf_counter()
    problems, stats = deep_check(
        [(root, names)], reuse=mode == "cached", workers=workers, cache=cache
    )
    seconds = time.perf_counter() - t0
    return {
        "images": len(names),
        "decoded": stats.decoded,
        "bad": len(problems[root]),
        "seconds": seconds,
    }


def run(root: Path, mode: str, workers: int, cache: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--workers",
            str(workers),
            "--dir",
            str(root),
            "--cache",
            str(cache),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.dir, args.child, args.workers, args.cache)))
        return

    from kohya_plan.inputs.decode import default_workers

    tmp = None
    root = args.dir
    if root is None:
        tmp = tempfile.mkdtemp(prefix="kohya-plan-bench-deep-")
        root = Path(tmp) / "images"
    try:
        t0 = time.perf_counter()
        names = generate(root, args.images)
        size = sum((root / n).stat().st_size for n in names)
        made = time.perf_counter() - t0
        print(f"{len(names)} images, {size / 2**20:.0f} MiB ({made:.0f} s to make)")
        cores = default_workers()
        with tempfile.TemporaryDirectory() as cache_tmp:
            cache = Path(cache_tmp)
            rows = [
                ("check --deep, 1 thread", run(root, "full", 1, cache)),
                (f"check --deep, {cores} threads (default)", run(root, "full", cores, cache)),
                (
                    f"launch after it: all cached ({cores} threads)",
                    run(root, "cached", cores, cache),
                ),
                (f"comparison: process pool of {cores}", run(root, "process", cores, cache)),
            ]
        for label, row in rows:
            rate = row["images"] / row["seconds"]
            bad = row["bad"]
            print(
                f"{label:45} {row['seconds']:7.2f} s  {rate:9,.0f} images/s  (damaged: {bad:.0f})"
            )
        print(f"CPUs: {os.cpu_count()} (affinity {cores}); load average {os.getloadavg()[0]:.1f}")
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
