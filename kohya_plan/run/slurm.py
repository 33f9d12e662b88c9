"""The SLURM client commands kohya-plan runs: sbatch, squeue, sacct, scancel (short commands,
through `capture`). Their output formats are read here too; what they mean for a run is
decided in workflows/slurm.py.

Every command sees kohya-plan's environment (``SLURM_CONF`` and the like choose the cluster).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kohya_plan.errors import LaunchError
from kohya_plan.run.capture import capture

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = [
    "AccountRow",
    "QueueRow",
    "SlurmError",
    "available",
    "parse_sacct",
    "parse_squeue",
    "sacct",
    "sbatch",
    "scancel",
    "squeue",
]

TIMEOUT_S = 60.0
INSTALL_HINT = (
    "the SLURM client commands (sbatch, squeue, sacct, scancel) are not on PATH — run this on "
    "the cluster's login node, or install the client (Debian/Ubuntu: slurm-client)"
)
_SQUEUE_FORMAT = "%i|%T|%r|%M|%l|%N"
_SACCT_FIELDS = ("JobID", "State", "ExitCode", "Elapsed", "Start", "End", "NodeList")


class SlurmError(LaunchError):
    """A SLURM command failed or is missing (exit 2: the command line or the cluster)."""


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One job (or array task) as squeue shows it: still pending or running."""

    job_id: str
    state: str  # PENDING, RUNNING, COMPLETING, CONFIGURING, SUSPENDED, …
    reason: str  # why it waits (Priority, Resources, JobArrayTaskLimit) or "None"
    elapsed: str
    limit: str
    nodes: str


@dataclass(frozen=True, slots=True)
class AccountRow:
    """One job (or array task) as sacct records it, also once it has ended."""

    job_id: str
    state: str  # COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, …
    exit_code: str  # "status:signal", e.g. "0:0", "1:0", "0:15"
    elapsed: str
    start: str
    end: str
    nodes: str

    @property
    def final_state(self) -> str:
        """The state's first word ("CANCELLED by 0" → "CANCELLED")."""
        return self.state.split()[0] if self.state else ""


def available() -> bool:
    """Whether the SLURM client commands are installed here."""
    return shutil.which("sbatch") is not None


def _run(argv: list[str], what: str) -> str:
    if shutil.which(argv[0]) is None:
        raise SlurmError(INSTALL_HINT)
    try:
        status, out = capture(argv, TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        msg = f"`{' '.join(argv)}` could not run ({exc}) — is the cluster reachable?"
        raise SlurmError(msg) from None
    if status != 0:
        msg = f"{what} failed (`{' '.join(argv)}`, exit status {status}): {out.strip()}"
        raise SlurmError(msg)
    return out


def sbatch(script: Path, *, options: Sequence[str] = ()) -> str:
    """Submit a job script; its job id (for a job array: the array's job id)."""
    out = _run(["sbatch", "--parsable", *options, str(script)], "sbatch")
    job = out.strip().splitlines()[-1].split(";")[0].strip() if out.strip() else ""
    if not job:
        msg = f"sbatch printed no job id for {script}: {out.strip()!r}"
        raise SlurmError(msg)
    return job


def parse_squeue(text: str) -> list[QueueRow]:
    """squeue -h -o '%i|%T|%r|%M|%l|%N' output."""
    rows = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 6:
            rows.append(QueueRow(*[p.strip() for p in parts[:6]]))
    return rows


def squeue(job_ids: Sequence[str]) -> list[QueueRow]:
    """The jobs (array tasks one by one) that are still queued or running."""
    if not job_ids:
        return []
    argv = ["squeue", "-h", "-r", "-j", ",".join(job_ids), "-o", _SQUEUE_FORMAT]
    if shutil.which("squeue") is None:
        raise SlurmError(INSTALL_HINT)
    try:
        status, out = capture(argv, TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        msg = f"`{' '.join(argv)}` could not run ({exc})"
        raise SlurmError(msg) from None
    # squeue exits 1 ("Invalid job id specified") once a job has left the queue
    return parse_squeue(out) if status == 0 else []


def parse_sacct(text: str) -> list[AccountRow]:
    """sacct -n -P -X -o JobID,State,ExitCode,Elapsed,Start,End,NodeList output."""
    rows = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= len(_SACCT_FIELDS):
            rows.append(AccountRow(*[p.strip() for p in parts[: len(_SACCT_FIELDS)]]))
    return rows


def sacct(job_id: str) -> list[AccountRow]:
    """The accounting rows of a job (an array: one per task); [] where there is no accounting."""
    argv = ["sacct", "-n", "-P", "-X", "-j", job_id, "-o", ",".join(_SACCT_FIELDS)]
    if shutil.which("sacct") is None:
        return []
    try:
        status, out = capture(argv, TIMEOUT_S)
    except (OSError, TimeoutError):
        return []
    return parse_sacct(out) if status == 0 else []


def scancel(job_id: str, *, signal: str | None = None) -> None:
    """Cancel a job (SIGTERM to its steps and batch shell, SIGKILL after KillWait)."""
    argv = ["scancel", *([f"--signal={signal}"] if signal else []), job_id]
    _run(argv, "scancel")
