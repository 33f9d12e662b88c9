"""`kohya-plan stop RUN_DIR`: stop a running run from another terminal, the way Ctrl-C does.

A small dispatch: each `Stopper` knows one way a run can be running (this machine's
`launch`; a SLURM job, `submit`) — whether the run is active that way,
how to stop it, and how to tell that it has ended. `stop_run` asks them in order and uses the
first that says the run is active. Another batch system is one more `Stopper` in `STOPPERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kohya_plan import rundir
from kohya_plan.run.control import NotRunning, live_status, stop_local, wait_until_ended

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = ["STOPPERS", "StopDone", "Stopper", "stop_run"]

# Beyond the run's own grace period: kohya-plan's SIGTERM and SIGKILL steps, and slack.
_WAIT_BEYOND_GRACE_S = 30.0


@dataclass(frozen=True)
class Stopper:
    """One way a run can be running, and how to stop it."""

    name: str
    active: Callable[[rundir.RunDir], bool]
    """Whether the run is running this way now."""
    stop: Callable[[rundir.RunDir, bool], str]
    """Ask it to stop (the bool: now, not gracefully); returns what was done, as a sentence."""
    wait: Callable[[rundir.RunDir, float], bool]
    """Wait up to the seconds given for it to end; False when it has not."""
    default_wait_s: Callable[[rundir.RunDir], float]


def _local_active(run: rundir.RunDir) -> bool:
    status = live_status(run)
    return status.running or status.guardian_alive or status.trainer_alive


def _local_wait_s(run: rundir.RunDir) -> float:
    grace = live_status(run).grace_s
    return (30.0 if grace is None else grace) + _WAIT_BEYOND_GRACE_S


LOCAL = Stopper(
    name="local",
    active=_local_active,
    stop=lambda run, now: stop_local(run, now=now),
    wait=wait_until_ended,
    default_wait_s=_local_wait_s,
)

# A SLURM run: the job's own steps run the trainer (on the cluster's nodes), so the scheduler
# is asked and stops it; a job that is no longer queued is not active (the local stopper then
# says why nothing runs).
_SLURM_POLL_S = 2.0


def _slurm_active(run: rundir.RunDir) -> bool:
    from kohya_plan.workflows.slurm import queue_state

    # "unknown": neither squeue nor sacct knows the job (no accounting): scancel is still the
    # way to make sure it is gone
    return queue_state(run) in ("queued", "unknown")


def _slurm_stop(run: rundir.RunDir, now: bool) -> str:
    from kohya_plan.workflows.slurm import stop_slurm

    job = stop_slurm(run.path, now=now)
    how = "SIGKILL" if now else "SIGTERM: sd-scripts stops as after Ctrl-C"
    return f"cancelled SLURM job {job} (scancel; the trainer gets {how})"


def _slurm_wait(run: rundir.RunDir, timeout_s: float) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    from kohya_plan.workflows.slurm import queue_state

    while queue_state(run) == "queued":
        if time.monotonic() >= deadline:
            return False
        time.sleep(_SLURM_POLL_S)
    return True


SLURM = Stopper(
    name="slurm",
    active=_slurm_active,
    stop=_slurm_stop,
    wait=_slurm_wait,
    # scancel's SIGTERM, the job script's grace for sd-scripts, then SLURM's KillWait
    default_wait_s=lambda run: 120.0,
)

STOPPERS: list[Stopper] = [SLURM, LOCAL]
"""Asked in order; the first whose `active` says yes stops the run."""


@dataclass(frozen=True)
class StopDone:
    """What `stop_run` did."""

    stopper: str
    action: str
    ended: bool | None
    """True once the run ended, False when it had not within the wait, None: not waited."""


def stop_run(
    run_dir: Path, *, now: bool = False, wait: bool = True, timeout_s: float | None = None
) -> StopDone:
    """Stop the run in `run_dir` (see the module docstring); NotRunning when nothing runs."""
    run = rundir.RunDir(run_dir).require_made()
    for stopper in STOPPERS:
        if stopper.active(run):
            action = stopper.stop(run, now)
            ended = None
            if wait:
                limit = stopper.default_wait_s(run) if timeout_s is None else timeout_s
                ended = stopper.wait(run, limit)
            return StopDone(stopper.name, action, ended)
    # No stopper claims it: the local one says why (never launched / already ended).
    stop_local(run, now=now)
    msg = f"nothing runs in {run.path}"
    raise NotRunning(msg)
