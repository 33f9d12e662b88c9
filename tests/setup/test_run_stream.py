"""The streaming runner setup uses: lines split on \\r and \\n, a log, a child that never
outlives an interrupted kohya-plan."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

import pytest

from kohya_plan.run.stream import stream

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


def test_lines_are_split_on_carriage_returns_and_logged(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.stdout.write('Downloading 10%\\rDownloading 100%\\nok\\n')\n"
        "sys.stderr.write('an error line\\n')\n"
        "sys.stdout.write('no newline at the end')\n"
        "sys.exit(3)\n"
    )
    seen: list[str] = []
    log = tmp_path / "tool.log"
    result = stream([sys.executable, "-c", code], on_line=seen.append, log=log)
    assert result.returncode == 3
    assert seen == [
        "Downloading 10%",
        "Downloading 100%",
        "ok",
        "an error line",
        "no newline at the end",
    ]
    assert result.tail[-1] == "no newline at the end"
    assert b"Downloading 10%\rDownloading 100%" in log.read_bytes()


def test_an_interrupt_while_waiting_ends_the_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = (
        "import os, sys, time\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )

    def on_line(line: str) -> None:
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        stream([sys.executable, "-c", code], on_line=on_line)
    assert time.monotonic() - started < 30
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
