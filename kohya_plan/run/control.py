"""A local run from the outside: is it running, did kohya-plan die under it, and `stop`.

What `launch` records makes this exact: exit.json names kohya-plan's own pid and start time
(and says whether kohya-plan saw the end), trainer.json is the guardian's record of the
trainer, and the run folder's lock is held for as long as anything of the run lives. A pid is
only believed together with its start time, so a reused pid is never taken for the run.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kohya_plan import rundir
from kohya_plan.errors import UsageError
from kohya_plan.run.identity import alive
from kohya_plan.run.locks import holder
from kohya_plan.run.supervisor import STOP_NOW_SIGNAL, STOP_SIGNAL

if TYPE_CHECKING:
    from kohya_plan.rundir import RunDir

__all__ = ["LiveStatus", "NotRunning", "live_status", "stop_local", "wait_until_ended"]

# The guardian's own signals (guardian.py): SIGTERM = stop the graceful way, SIGUSR2 = kill.
_GUARDIAN_STOP = signal.SIGTERM
_GUARDIAN_KILL = getattr(signal, "SIGUSR2", signal.SIGTERM)


class NotRunning(UsageError):
    """`stop` of a run folder where nothing runs (exit 2)."""


@dataclass(frozen=True)
class LiveStatus:
    """Where a locally launched run stands now."""

    launched: bool
    """exit.json exists: `launch` started (or tried to start) the trainer here."""
    finished: bool
    """kohya-plan saw the trainer's end and recorded it (exit.json)."""
    supervisor_pid: int | None
    supervisor_alive: bool
    locked: bool
    """The run folder's lock is held: kohya-plan or its guardian still runs."""
    trainer_pid: int | None
    trainer_alive: bool
    trainer_exit_status: int | None
    """The trainer's exit status as the guardian recorded it (trainer.json), if it ended."""
    trainer_ended: bool
    stopped_by_guardian: bool
    """The guardian stopped the trainer because kohya-plan was gone."""
    guardian_pid: int | None
    guardian_alive: bool
    grace_s: float | None

    @property
    def running(self) -> bool:
        """kohya-plan supervises the run right now."""
        return self.launched and not self.finished and self.supervisor_alive

    @property
    def interrupted(self) -> bool:
        """kohya-plan stopped (died) before it saw the trainer's end."""
        return self.launched and not self.finished and not self.supervisor_alive


def _ident(record: dict[str, Any] | None, key: str) -> tuple[int | None, float | None]:
    item = record.get(key) if record else None
    if not isinstance(item, dict):
        return None, None
    pid, created = item.get("pid"), item.get("create_time")
    return (
        pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        float(created) if isinstance(created, (int, float)) else None,
    )


def live_status(run: RunDir) -> LiveStatus:
    """Read exit.json, trainer.json and the lock; ask the OS which processes still run."""
    exit_info = run.read_json(rundir.EXIT, required=False)
    trainer = run.read_json(rundir.TRAINER, required=False) or {}
    sup_pid, sup_created = _ident(exit_info, "supervisor")
    t_pid = trainer.get("pid") if isinstance(trainer.get("pid"), int) else None
    t_created = trainer.get("create_time")
    g_pid = trainer.get("guardian_pid") if isinstance(trainer.get("guardian_pid"), int) else None
    g_created = trainer.get("guardian_create_time")
    ended = bool(trainer.get("ended"))
    status = trainer.get("exit_status")
    grace = exit_info.get("grace_s") if exit_info else None
    return LiveStatus(
        launched=exit_info is not None,
        finished=bool(exit_info and exit_info.get("finished")),
        supervisor_pid=sup_pid,
        supervisor_alive=sup_pid is not None and alive(sup_pid, sup_created),
        locked=holder(run.lock) is not None,
        trainer_pid=t_pid,
        trainer_alive=t_pid is not None and not ended and alive(t_pid, t_created),
        trainer_exit_status=status if isinstance(status, int) and ended else None,
        trainer_ended=ended,
        stopped_by_guardian=bool(trainer.get("supervisor_gone")),
        guardian_pid=g_pid,
        guardian_alive=g_pid is not None and alive(g_pid, g_created),
        grace_s=float(grace) if isinstance(grace, (int, float)) else None,
    )


def stop_local(run: RunDir, *, now: bool = False) -> str:
    """Stop the locally launched run in `run` the way Ctrl-C would (`now`: as a second Ctrl-C).

    Signals kohya-plan (STOP_SIGNAL / STOP_NOW_SIGNAL), which stops the trainer through its
    guardian and writes the summary; when kohya-plan is gone but the trainer is not, signals
    the guardian directly. Returns what was done, as a sentence. Raises NotRunning when
    nothing of the run runs.
    """
    status = live_status(run)
    if status.running and status.supervisor_pid is not None:
        os.kill(status.supervisor_pid, STOP_NOW_SIGNAL if now else STOP_SIGNAL)
        how = "kill the trainer now" if now else "stop the trainer the graceful way (as Ctrl-C)"
        return f"asked kohya-plan (pid {status.supervisor_pid}) to {how}"
    if status.guardian_alive and status.guardian_pid is not None:
        os.kill(status.guardian_pid, _GUARDIAN_KILL if now else _GUARDIAN_STOP)
        how = "kill it now" if now else "stop it the graceful way"
        return (
            f"kohya-plan is gone; asked its guardian (pid {status.guardian_pid}), which "
            f"still watches the trainer (pid {status.trainer_pid}), to {how}"
        )
    if status.trainer_alive and status.trainer_pid is not None:
        # Neither kohya-plan nor its guardian is left (both killed): the trainer alone.
        os.kill(
            status.trainer_pid, getattr(signal, "SIGKILL", signal.SIGTERM) if now else signal.SIGINT
        )
        pid = status.trainer_pid
        return f"kohya-plan and its guardian are gone; signalled the trainer (pid {pid})"
    if not status.launched:
        msg = f"nothing runs in {run.path}: it was never launched (`kohya-plan launch {run.path}`)"
    else:
        msg = f"nothing runs in {run.path}: the run has ended (`kohya-plan summary {run.path}`)"
    raise NotRunning(msg)


def wait_until_ended(run: RunDir, timeout_s: float, poll_s: float = 0.2) -> bool:
    """Wait until nothing of the run runs (the lock is free); False after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = live_status(run)
        if not status.locked and not status.trainer_alive:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
