"""A plan whose trainer is the fake trainer, and kohya-plan as a real process beside the test.

`fake_project` writes a plan (4 images, an sd-scripts stand-in) whose `launch.python` is a
wrapper that runs `fake_trainer.py` with the given arguments; `kohya` starts `kohya-plan` as its
own process (real signals, real pipes); `wait_for` polls for a condition.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers import base_plan, make_images, write_plan

if TYPE_CHECKING:
    from collections.abc import Callable

FAKE = Path(__file__).with_name("fake_trainer.py")
LOGS = Path(__file__).parent.parent / "fixtures" / "logs"
BASIC_LOG = LOGS / "run1_basic.stderr.txt"


def fake_project(tmp_path: Path, *fake_args: str, **sections: dict[str, Any]) -> Path:
    """A plan in tmp_path whose 'python' is a wrapper running the fake trainer with fake_args."""
    make_images(tmp_path / "data" / "5_testchar", [(512, 512)] * 4)
    sd = tmp_path / "sd-scripts"
    sd.mkdir(exist_ok=True)
    (sd / "train_network.py").write_text("# stand-in; the fake trainer runs instead\n")
    wrapper = tmp_path / "fake-python"
    wrapper.write_text(
        "#!/bin/sh\nexec " + shlex.join([sys.executable, str(FAKE), *fake_args]) + "\n"
    )
    wrapper.chmod(0o755)
    launch = {"sd_scripts": str(sd), "python": str(wrapper), **sections.pop("launch", {})}
    return write_plan(tmp_path, base_plan(launch=launch, **sections))


def kohya(*args: object, **popen: Any) -> subprocess.Popen[bytes]:
    """`kohya-plan ARGS` as a process of its own (stdout and stderr merged into a pipe)."""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.STDOUT)
    return subprocess.Popen([sys.executable, "-m", "kohya_plan", *map(str, args)], **popen)


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "") -> Any:
    """Poll `condition` until it is true (its value is returned) or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


def only_run_dir(project: Path) -> Path:
    """The one run folder under project/runs."""
    (run_dir,) = (project / "runs").iterdir()
    return run_dir


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
