"""What must hold before a run starts: one writer per run folder and per output (OS-released
locks), no LoRA file overwritten unasked, a trainer that is there."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kohya_plan.errors import (
    LaunchError,
)
from kohya_plan.outputs import (
    OUTPUT_LOCK,
    existing_outputs,
)
from kohya_plan.run.identity import alive, identity
from kohya_plan.run.locks import Busy, Lock, acquire, holder

if TYPE_CHECKING:
    from kohya_plan import rundir
    from kohya_plan.plan import Plan
    from kohya_plan.planning import Trainer


# How long a refused launch waits for the other launch to name its new run folder.
_RUN_DIR_WAIT_S = 5.0


def _holder_text(note: dict[str, object]) -> str:
    pid = note.get("pid")
    if not isinstance(pid, int):
        return "another kohya-plan launch"
    where = note.get("run_dir") or note.get("plan")
    text = f"kohya-plan pid {pid}" + (f", run folder {where}" if where else "")
    if not alive(pid, note.get("create_time")):
        text += "; that kohya-plan is gone, and its guardian is still stopping the trainer"
    return text


def lock_run_dir(run: rundir.RunDir) -> Lock:
    """The run folder's lock, or a LaunchError naming the launch that holds it."""
    try:
        return acquire(run.lock, **identity(), run_dir=str(run.path), since=time.time())
    except Busy as busy:
        msg = (
            f"{run.path} is being launched already ({_holder_text(busy.note)}) — "
            f"`kohya-plan summary {run.path}` shows its progress, `kohya-plan stop {run.path}` "
            "stops it"
        )
        raise LaunchError(msg) from None
    except OSError as exc:
        msg = f"cannot lock {run.lock} ({exc.strerror or exc}) — is the run folder writable?"
        raise LaunchError(msg) from None


def lock_output(plan: Plan, run_dir: Path | None, *, plan_path: Path | None = None) -> Lock:
    """The lock on output.dir + output.name (one writer per output), or a LaunchError."""
    out = plan.output.dir
    path = out / OUTPUT_LOCK.format(name=plan.output.name)
    try:
        out.mkdir(parents=True, exist_ok=True)
        return acquire(
            path,
            **identity(),
            run_dir=None if run_dir is None else str(run_dir),
            plan=None if plan_path is None else str(plan_path),
            since=time.time(),
        )
    except Busy as busy:
        note = busy.note
        # The other launch may still be making its run folder: give it a moment to say which.
        deadline = time.monotonic() + _RUN_DIR_WAIT_S
        while not note.get("run_dir") and time.monotonic() < deadline:
            time.sleep(0.1)
            note = holder(path) or note
        busy.note = note
        where = note.get("run_dir")
        stop = f" (`kohya-plan stop {where}` stops it)" if where else ""
        msg = (
            f"{out} / {plan.output.name}: another launch is writing this output "
            f"({_holder_text(busy.note)}){stop} — wait for it to end, or choose another "
            "output.name or output.dir"
        )
        raise LaunchError(msg) from None
    except OSError as exc:
        msg = (
            f"cannot write into output.dir {out} ({exc.strerror or exc}) — sd-scripts could not "
            "save the LoRA files there either: choose a writable output.dir"
        )
        raise LaunchError(msg) from None


def refuse_overwrite(plan: Plan) -> None:
    """Refuse a launch that would overwrite LoRA files of this output name without a word."""
    existing = existing_outputs(plan)
    if existing:
        names = ", ".join(p.name for p in existing[:3]) + (" …" if len(existing) > 3 else "")
        msg = (
            f"{plan.output.dir} already holds {names}; sd-scripts would overwrite them without "
            "a word — pass --overwrite, --resume to continue from a saved state, or change "
            "output.name / output.dir"
        )
        raise LaunchError(msg)


def preflight(trainer: Trainer, plan: Plan) -> None:
    """What would make the trainer fail at once, said now and clearly (before `make`)."""
    _check_script(trainer.script(plan))
    _check_program(trainer.python or "accelerate")


def preflight_argv(argv: list[str], script_name: str) -> None:
    """`preflight` for a made run folder, from its argv."""
    script = next((a for a in argv if Path(a).name == script_name), None)
    if script is not None:
        _check_script(Path(script))
    if argv:
        _check_program(argv[0])


def _check_script(script: Path) -> None:
    if not script.is_file():
        msg = (
            f"sd-scripts is not at {script.parent} — run `kohya-plan setup` (in a "
            "clone of kohya-plan: scripts/setup-sd-scripts), or set launch.sd_scripts "
            "(or KOHYA_SD_SCRIPTS) and make the run again"
        )
        raise LaunchError(msg)


def _check_program(program: str) -> None:
    if os.sep in program or "/" in program:
        if not Path(program).is_file():
            msg = (
                f"the Python for sd-scripts is not at {program} — run `kohya-plan setup` (in "
                "a clone of kohya-plan: scripts/setup-sd-scripts) or set launch.python (or "
                "KOHYA_SD_PYTHON)"
            )
            raise LaunchError(msg)
    elif shutil.which(program) is None:
        msg = (
            f"`{program}` is not on PATH — set launch.python to the interpreter that has "
            "sd-scripts' requirements (or run scripts/setup-sd-scripts)"
        )
        raise LaunchError(msg)
