"""`kohya-plan make --dry-run` on the shipped example: wall time of the whole command.

Target: median ≤ 0.3 s. Usage: python bench/bench_dry_run.py [RUNS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "examples" / "tutorial" / "plan.toml"


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    argv = [sys.executable, "-m", "kohya_plan", "make", str(PLAN), "--dry-run"]
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        # An installed package has its bytecode; without it every run compiles every module.
        print("note: PYTHONDONTWRITEBYTECODE is set: each run compiles kohya-plan anew")
    subprocess.run(argv, check=True, capture_output=True)  # warm the page and bytecode caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    print(
        f"make --dry-run: median {statistics.median(times):.3f} s, "
        f"min {min(times):.3f} s, max {max(times):.3f} s over {runs} runs"
    )


if __name__ == "__main__":
    main()
