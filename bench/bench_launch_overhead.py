"""Supervision overhead during a REAL sd-scripts CPU run (tiny random SD1.5 model).

Runs `kohya-plan launch` on a small dataset (needs vendor/sd-scripts and .venv-sd; builds the
tiny model once, see tests/sdlab.py) and reads exit.json: kohya-plan's own CPU time while the
trainer ran vs the trainer tree's CPU time, and kohya-plan's peak RSS.
Targets: overhead ≤ 1 % of the trainer's CPU; RSS ≤ 100 MB.
Usage: python bench/bench_launch_overhead.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import sdlab  # noqa: E402
from helpers import base_plan, make_images, write_plan  # noqa: E402


def main() -> None:
    reason = sdlab.skip_reason()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    cache = sdlab.lab_cache_dir()
    model, tokenizer = sdlab.tiny_sd15(cache), sdlab.tokenizer_cache(cache)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_images(root / "data" / "2_testchar", [(64, 64)] * 4, caption="testchar, red")
        plan = write_plan(
            root,
            base_plan(
                model={"base": str(model), "tokenizer_cache_dir": str(tokenizer)},
                dataset={"resolution": 64, "min_bucket_reso": 64, "max_bucket_reso": 128},
                network={"dim": 4, "alpha": 2},
                optimizer={"type": "AdamW", "scheduler": "constant"},
                training={"epochs": 2, "mixed_precision": "no"},
                launch={
                    "sd_scripts": str(sdlab.sd_scripts_dir()),
                    "python": str(sdlab.sd_python()),
                },
            ),
        )
        subprocess.run(
            [sys.executable, "-m", "kohya_plan", "launch", str(plan), "--plain"], check=True
        )
        (run_dir,) = (root / "runs").iterdir()
        info = json.loads((run_dir / "exit.json").read_text())
        log_bytes = (run_dir / "train.log").stat().st_size
    share = info["kohya_plan_cpu_s"] / info["trainer_cpu_s"] * 100
    print(
        f"trainer CPU {info['trainer_cpu_s']:.1f} s, "
        f"kohya-plan CPU {info['kohya_plan_cpu_s']:.2f} s "
        f"({share:.2f} %), kohya-plan peak RSS {info['kohya_plan_max_rss_mib']:.0f} MiB, "
        f"wall {info['wall_s']:.0f} s, log {log_bytes / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()
