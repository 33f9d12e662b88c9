"""Time `sweep` planning: a 10 × 10 grid = 100 points, each checked, then each made into its run
folder (`make`), with sweep.json and queue.json — what `kohya-plan sweep PLAN --no-run` does.

Run: .venv/bin/python bench/bench_sweep.py [--repeat 3] [--slurm]

The plan is the comparison lab's (tests/compare_lab.py: a local model and tokenizer folder, four
images, sampling every epoch). Prints the median (and every) time of `make_sweep` and of its
first part alone (`plan_sweep`: build and check every point), and the whole command as a user
starts it (a new Python: imports included). Target: ≤ 3 s for the 100 points.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from compare_lab import write_plan  # noqa: E402

from kohya_plan.workflows.sweep import make_sweep, plan_sweep  # noqa: E402

# unet_lr between 2× and 10× the text encoder's 1e-5 (T17), dim from 4 up (alpha 2 ≤ dim, T12)
GRID = (
    "optimizer.unet_lr=" + ",".join(f"{2e-5 + i * 0.8e-5:.2g}" for i in range(10)),
    "network.dim=" + ",".join(str(4 * (i + 1)) for i in range(10)),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--slurm", action="store_true", help="also render the job array")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kp-bench-sweep-") as tmp:
        root = Path(tmp)
        plan = write_plan(root, epochs=10, prompts=4, size=512)
        text = plan.read_text(encoding="utf-8")
        text = text.replace("text_encoder_lr = 2e-5", "text_encoder_lr = 1e-5")
        text = text.replace("alpha = 16", "alpha = 2")
        plan.write_text(text, encoding="utf-8")
        checks, makes = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            planned = plan_sweep(plan, GRID)
            checks.append(time.perf_counter() - t0)
            assert len(planned.points) == 100
            t0 = time.perf_counter()
            sweep = make_sweep(plan, GRID, slurm=args.slurm)
            makes.append(time.perf_counter() - t0)
            assert len(sweep.run_dirs) == 100
            shutil.rmtree(sweep.path)
        cli = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = subprocess.run(
                [sys.executable, "-m", "kohya_plan", "sweep", str(plan), "--no-run"]
                + [a for g in GRID for a in ("--grid", g)],
                capture_output=True,
                text=True,
                check=False,
            )
            cli.append(time.perf_counter() - t0)
            assert res.returncode == 0, res.stdout + res.stderr
    print(f"plan_sweep (100 points checked): median {statistics.median(checks):.3f} s {checks}")
    print(
        f"make_sweep (checked + 100 run folders): median {statistics.median(makes):.3f} s {makes}"
    )
    print(f"kohya-plan sweep --no-run (whole command): median {statistics.median(cli):.3f} s {cli}")


if __name__ == "__main__":
    main()
