"""A stand-in for `accelerate launch train_network.py`, for supervisor tests.

Run with `sys.executable fake_trainer.py [options]`. Steps, in this order: set signal
dispositions, start a grandchild, print the ready marker, print ids and environment,
replay a log, print the "No data found" error, print NaN frames, crash, sleep, exit.
On SIGINT (unless ignored) it prints "interrupted, saving" and exits 130, as sd-scripts
does on KeyboardInterrupt.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

READY = b"fake-trainer: ready\n"

NO_DATA = (
    "2026-01-01 00:00:00 ERROR    No data found. Please verify arguments (train_data_dir "
    "must be the parent of folders with images) / 画像がありません。引数指定を確認してください"
    "（train_data_dirには画像があるフォルダではなく、画像があるフォルダの親フォルダを指定する必要"
    "があります）                                  train_network.py:576\n"
)

# What a grandchild runs: write its pid file once its signal handling is in place,
# sleep for long, on Ctrl-C optionally "save" for a while. Signals the trainer ignores
# are ignored here too, because SIG_IGN is inherited across exec (and Python then
# keeps it), exactly as an accelerate child inherits it.
GRANDCHILD = """
import os, sys, time
save_s, pid_file = float(sys.argv[1]), sys.argv[2]
try:
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(600)
except KeyboardInterrupt:
    if save_s:
        time.sleep(save_s)
        sys.stdout.write("grandchild: saved\\n")
"""


# What a daemonising helper does: fork, setsid, fork again (the middle process exits, so the
# last one is an orphan in a session of its own), stdio to /dev/null, then sleep for long.
def daemonize(pid_file: str) -> None:
    if os.fork() != 0:
        return
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(600)
    os._exit(0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replay", metavar="FILE", help="write FILE's bytes, in chunks")
    parser.add_argument("--stream", choices=["stdout", "stderr"], default="stderr")
    parser.add_argument("--chunk", type=int, default=4096, help="replay chunk size")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--exit-code", type=int, default=0)
    parser.add_argument("--crash", action="store_true", help="raise: traceback, exit 1")
    parser.add_argument("--nan", action="store_true", help="tqdm frames with avr_loss=nan")
    parser.add_argument("--no-data", action="store_true", help="sd-scripts' No data found")
    parser.add_argument("--ignore-sigint", action="store_true")
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--grandchild", action="store_true", help="start a sleeping child")
    parser.add_argument("--pid-file", help="where the grandchild writes its pid once ready")
    parser.add_argument(
        "--grandchild-save",
        type=float,
        default=0.0,
        metavar="S",
        help="on SIGINT the grandchild takes S seconds to save, then prints a line",
    )
    parser.add_argument(
        "--daemon", metavar="PID_FILE", help="double-fork + setsid a sleeper; it writes its pid"
    )
    parser.add_argument(
        "--write",
        action="append",
        default=[],
        metavar="PATH=TEXT",
        help="write TEXT into PATH in place (open 'wb': same inode), as sd-scripts saves",
    )
    parser.add_argument("--ready", action="store_true", help=f"print {READY!r} once set up")
    parser.add_argument("--print-ids", action="store_true", help="print pid, pgid, sid")
    parser.add_argument("--print-env", nargs="*", default=[], metavar="NAME")
    parser.add_argument("--sleep", type=float, default=0.0)
    return parser.parse_args(argv)


def write(stream: str, data: bytes) -> None:
    out = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
    out.write(data)
    out.flush()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.grandchild:
        # Inherits stdout/stderr, so it holds the supervisor's pipe open, as the real
        # trainer under accelerate does.
        if not args.pid_file:
            msg = "--grandchild needs --pid-file"
            raise SystemExit(msg)
        cmd = [sys.executable, "-c", GRANDCHILD, str(args.grandchild_save), args.pid_file]
        subprocess.Popen(cmd)
        # Wait until the grandchild can handle SIGINT, so that stop tests do not race
        # its interpreter's start-up.
        deadline = time.monotonic() + 30
        while not os.path.exists(args.pid_file) and time.monotonic() < deadline:
            time.sleep(0.005)
    if args.daemon:
        daemonize(args.daemon)
        deadline = time.monotonic() + 30
        while not os.path.exists(args.daemon) and time.monotonic() < deadline:
            time.sleep(0.005)
    if args.ready:
        write("stdout", READY)
    if args.print_ids:
        ids = f"pid={os.getpid()} pgid={os.getpgid(0)} sid={os.getsid(0)}\n"
        write("stdout", ids.encode())
    for name in args.print_env:
        write("stdout", f"{name}={os.environ.get(name, '<unset>')}\n".encode())
    if args.replay:
        with open(args.replay, "rb") as f:
            data = f.read()
        for i in range(0, len(data), args.chunk):
            write(args.stream, data[i : i + args.chunk])
            if args.delay:
                time.sleep(args.delay)
    if args.no_data:
        write("stderr", NO_DATA.encode())
        return 0
    if args.nan:
        total = 20
        for step in range(1, 4):
            pct = step * 100 // total
            frame = (
                f"\rsteps:  {pct:2d}%|▌         | {step}/{total} "
                f"[00:0{step}<00:19,  1.00it/s, avr_loss=nan]"
            )
            write("stderr", frame.encode())
            time.sleep(0.01)
    if args.crash:
        msg = "fake trainer crashed"
        raise RuntimeError(msg)
    if args.sleep:
        time.sleep(args.sleep)
    for item in args.write:
        path, _, text = item.partition("=")
        with open(path, "wb") as f:
            f.write(text.encode())
    return args.exit_code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        write("stdout", b"interrupted, saving\n")
        sys.exit(130)
