"""How much the supervisor costs while a trainer floods its pipe.

Builds a ~50 MB log from the real sd-scripts fixtures, has the fake trainer replay it
through `Supervisor` with a callback that does nothing, and reports the supervising
process's own CPU time and peak RSS next to the trainer's CPU time.

    python bench/bench_supervise.py [--mb 50] [--chunk 4096]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from kohya_plan.run.supervisor import Supervisor

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "integration" / "fake_trainer.py"
LOGS = ROOT / "tests" / "fixtures" / "logs"


def build_log(path: Path, size: int) -> int:
    """Concatenate the fixture logs (\\r frames included) until `size` bytes."""
    parts = [p.read_bytes() for p in sorted(LOGS.glob("*.std*.txt"))]
    if not parts:
        sys.exit(f"no fixture logs in {LOGS}")
    block = b"".join(parts)
    with path.open("wb") as f:
        written = 0
        while written < size:
            f.write(block)
            written += len(block)
    return written


def cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=50.0, help="size of the replayed log")
    parser.add_argument("--chunk", type=int, default=4096, help="trainer's write size")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of a silent trainer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "synthetic.log"
        size = build_log(src, int(args.mb * 1e6))
        log_path = Path(tmp) / "train.log"
        calls = 0

        def on_output(chunk: bytes) -> None:
            nonlocal calls
            calls += 1

        argv = [sys.executable, str(FAKE), "--replay", str(src), "--chunk", str(args.chunk)]
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        with Supervisor(argv, env=None, cwd=None, log_path=log_path, on_output=on_output) as sup:
            result = sup.run()
        wall = time.perf_counter() - started
        self_after = resource.getrusage(resource.RUSAGE_SELF)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert result.returncode == 0, result
        assert log_path.stat().st_size == size, "log is not the replayed size"

    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    rss_unit = 1 if sys.platform == "darwin" else 1024
    supervisor_cpu = cpu(self_after) - cpu(self_before)
    trainer_cpu = cpu(children_after) - cpu(children_before)
    print(f"replayed           {size / 1e6:.1f} MB in {args.chunk}-byte writes")
    print(f"wall time          {wall:.2f} s ({size / 1e6 / wall:.0f} MB/s)")
    print(f"callback calls     {calls} ({size / calls / 1024:.1f} KiB per chunk)")
    print(f"supervisor CPU     {supervisor_cpu:.2f} s (RUSAGE_SELF delta)")
    print(f"trainer CPU        {trainer_cpu:.2f} s (RUSAGE_CHILDREN delta)")
    print(f"supervisor/trainer {supervisor_cpu / trainer_cpu:.2f}")
    print(
        f"peak RSS           {self_after.ru_maxrss * rss_unit / 2**20:.1f} MiB "
        f"(before run: {rss_before * rss_unit / 2**20:.1f} MiB)"
    )

    # The other extreme: a trainer that prints nothing (the main loop only polls).
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, str(FAKE), "--sleep", str(args.idle)]
        before = resource.getrusage(resource.RUSAGE_SELF)
        Supervisor(
            argv, env=None, cwd=None, log_path=Path(tmp) / "train.log", on_output=on_output
        ).run()
        idle_cpu = cpu(resource.getrusage(resource.RUSAGE_SELF)) - cpu(before)
    print(f"idle supervisor    {idle_cpu * 1000:.0f} ms CPU over a {args.idle:g} s silent run")


if __name__ == "__main__":
    main()
