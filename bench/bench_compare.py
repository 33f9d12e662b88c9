"""Time `compare` over a sweep of 10 runs × 10 epochs × 4 prompts (400 sample images, 256 px
noisy PNGs embedded), each run with its train.log and summary.json.

Run: .venv/bin/python bench/bench_compare.py [--repeat 3] [--size 256]

The sweep is made by tests/compare_lab.py (make_sweep, then what a finished run leaves). Prints
the median (and every) time of `write_compare` with its parts (gather: the report's reader over
every run; render: template and chart) and the page's size, and the whole `kohya-plan compare`
command (a new Python: imports included). Target: ≤ 3 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from compare_lab import trained_sweep  # noqa: E402

from kohya_plan.workflows.compare import gather_compare, render_compare, write_compare  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kp-bench-compare-") as tmp:
        t0 = time.perf_counter()
        grid = ("network.dim=" + ",".join(str(16 * (i + 1)) for i in range(10)),)
        sweep = trained_sweep(Path(tmp), grid, epochs=10, prompts=4, size=args.size, per_epoch=100)
        print(f"built the sweep (10 runs, 400 images) in {time.perf_counter() - t0:.1f} s")
        totals, gathers, renders = [], [], []
        size = 0
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            data = gather_compare([sweep.path])
            t1 = time.perf_counter()
            render_compare(data)
            t2 = time.perf_counter()
            gathers.append(t1 - t0)
            renders.append(t2 - t1)
            t0 = time.perf_counter()
            page = write_compare([sweep.path])
            totals.append(time.perf_counter() - t0)
            size = page.stat().st_size
        cli = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = subprocess.run(
                [sys.executable, "-m", "kohya_plan", "compare", str(sweep.path)],
                capture_output=True,
                text=True,
                check=False,
            )
            cli.append(time.perf_counter() - t0)
            assert res.returncode == 0, res.stdout + res.stderr
    print(f"write_compare: median {statistics.median(totals):.3f} s {totals}")
    print(f"  gather {statistics.median(gathers):.3f} s, render {statistics.median(renders):.3f} s")
    print(f"  page {size / 2**20:.1f} MiB")
    print(f"kohya-plan compare (whole command): median {statistics.median(cli):.3f} s {cli}")


if __name__ == "__main__":
    main()
