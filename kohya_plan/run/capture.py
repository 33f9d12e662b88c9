"""Short helper commands whose output kohya-plan reads (e.g. nvidia-smi): run, capture, done.

Kept beside the supervisor so that starting processes stays in `kohya_plan.run`.
"""

from __future__ import annotations

import subprocess


def capture(argv: list[str], timeout_s: float) -> tuple[int, str]:
    """Run a short command with no input; (exit status, stdout + stderr as text).

    Raises TimeoutError when it does not finish within timeout_s, OSError when it cannot run.
    """
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        msg = f"{argv[0]} did not finish within {timeout_s:g} s"
        raise TimeoutError(msg) from exc
    return proc.returncode, proc.stdout + proc.stderr
