"""Throughput and memory of LogParser.feed over a ~100 MB log made of the real sd-scripts logs.

Run: .venv/bin/python bench/bench_parse.py [--mb 100] [--chunk 65536]

The log is built in a temporary folder by repeating the fixtures in tests/fixtures/logs
(stdout then stderr of each run), then read back in chunks and fed to one parser, the way the
supervisor reads the trainer's pipe. Prints MB/s, events, and peak RSS before and after.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kohya_plan.trainlog.records import LogParser  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "logs"


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux (bytes on macOS).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def build_log(path: Path, target_bytes: int) -> int:
    files = sorted(FIXTURES.glob("*.std*.txt"))
    if not files:
        raise SystemExit(f"no fixtures in {FIXTURES}")
    unit = b"".join(f.read_bytes() for f in files)
    written = 0
    with path.open("wb") as out:
        while written < target_bytes:
            out.write(unit)
            written += len(unit)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=100.0, help="size of the log to build (MB)")
    ap.add_argument("--chunk", type=int, default=64 * 1024, help="bytes per feed() call")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "big.log"
        size = build_log(log, int(args.mb * 1_000_000))
        rss_before = peak_rss_mib()
        parser = LogParser()
        counts: dict[str, int] = {}
        start = time.perf_counter()
        cpu_start = time.process_time()
        with log.open("rb") as f:
            while chunk := f.read(args.chunk):
                for event in parser.feed(chunk):
                    name = type(event).__name__
                    counts[name] = counts.get(name, 0) + 1
        for event in parser.finish():
            name = type(event).__name__
            counts[name] = counts.get(name, 0) + 1
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        rss_after = peak_rss_mib()

    print(f"log: {size / 1e6:.1f} MB, chunk {args.chunk} B, python {sys.version.split()[0]}")
    print(f"wall: {elapsed:.2f} s  ->  {size / 1e6 / elapsed:.1f} MB/s")
    # CPU time is steadier than wall time on a shared machine.
    print(f"cpu:  {cpu:.2f} s  ->  {size / 1e6 / cpu:.1f} MB per CPU second")
    print(
        f"events: {sum(counts.values())}  "
        + ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    )
    print(f"peak RSS: {rss_before:.1f} MiB before parsing, {rss_after:.1f} MiB after")


if __name__ == "__main__":
    main()
