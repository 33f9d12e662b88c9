"""The SLURM test cluster: a real single-node Slurm on localhost, for the tests marked `slurm`.

Import the fixture into a test module (or a conftest) as
``from slurm_lab import slurm_cluster_fixture``; tests then ask for ``slurm_cluster``.
It brings the cluster up once per test session in a fresh temporary folder
(``tests/labs/slurm/slurm-up.sh``: munged, mariadbd, slurmdbd, slurmctld, slurmd, free ports,
a few seconds) and always tears it down (``slurm-down.sh``: jobs cancelled first, then exactly
the daemons it started), also when a test fails or the run is interrupted with Ctrl-C. While it
is up, ``SLURM_CONF`` in ``os.environ`` points at it, so ``sbatch``/``squeue``/``sacct`` started
by the code under test reach it.

Where Slurm is not installed the fixture skips, naming the missing programs and the command::

    apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge slurmdbd \
        mariadb-server

(Debian/Ubuntu; their ``policy-rc.d`` keeps the system's own daemons from starting.) The daemons
run as root, as slurmd starts the job steps: the tests skip for other users.

Command line (up, a probe job, down)::

    .venv/bin/python tests/slurm_lab.py
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

TESTS_DIR = Path(__file__).resolve().parent
LAB_DIR = TESTS_DIR / "labs" / "slurm"
UP = LAB_DIR / "slurm-up.sh"
DOWN = LAB_DIR / "slurm-down.sh"

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge", "slurmdbd", "mariadb-server")
INSTALL = "apt-get install -y --no-install-recommends " + " ".join(PACKAGES)
# program the lab runs -> the Debian package that has it
PROGRAMS = {
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "sbatch": "slurm-client",
    "squeue": "slurm-client",
    "sacct": "slurm-client",
    "sacctmgr": "slurm-client",
    "scancel": "slurm-client",
    "sinfo": "slurm-client",
    "scontrol": "slurm-client",
    "srun": "slurm-client",
    "munged": "munge",
    "slurmdbd": "slurmdbd",
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
}
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)


def skip_reason() -> str | None:
    """Why the lab cluster cannot run here (None when it can)."""
    missing = sorted(name for name in PROGRAMS if shutil.which(name) is None)
    if missing:
        packages = sorted({PROGRAMS[name] for name in missing})
        return (
            f"SLURM is not installed (missing {', '.join(missing)} from the packages "
            f"{', '.join(packages)}): {INSTALL}"
        )
    if os.geteuid() != 0:
        return (
            "the SLURM lab cluster runs its daemons as root (slurmd starts job steps): run as root"
        )
    return None


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class SlurmCluster:
    """A running lab cluster: its folder, the client environment and small client helpers."""

    root: Path
    env: dict[str, str]
    up_seconds: float = 0.0
    up_log: str = ""
    down_log: str = field(default="", repr=False)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def logs(self) -> Path:
        return self.root / "log"

    def run(self, *argv: str | Path, check: bool = True, timeout: float = 60) -> str:
        """A Slurm client command's stdout (stderr too in the error when it fails)."""
        res = subprocess.run(
            [str(a) for a in argv],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and res.returncode != 0:
            msg = f"{' '.join(map(str, argv))} failed ({res.returncode}):\n{res.stdout}{res.stderr}"
            raise RuntimeError(msg)
        return res.stdout

    def sbatch(self, script: Path, *options: str) -> str:
        """Submit `script`; the job id (for an array: the array's job id)."""
        out = self.run("sbatch", "--parsable", *options, script)
        return out.strip().split(";")[0]

    def scontrol_states(self, job_id: str) -> dict[str, str]:
        """JobId (array tasks as ``A_T``) -> JobState, from the controller (no accounting lag)."""
        out = self.run("scontrol", "show", "job", "-o", job_id, check=False)
        states: dict[str, str] = {}
        for line in out.splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if "JobState" not in fields:
                continue
            key = fields["JobId"]
            if fields.get("ArrayTaskId") not in (None, "N/A"):
                key = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
            states[key] = fields["JobState"]
        return states

    def sacct(
        self, job_id: str, fields: Sequence[str] = ("JobID", "State", "ExitCode")
    ) -> list[dict[str, str]]:
        """sacct's rows for a job (with its steps), one dict per row."""
        out = self.run("sacct", "-j", job_id, "-n", "-P", "-o", ",".join(fields), check=False)
        return [dict(zip(fields, line.split("|"), strict=False)) for line in out.splitlines()]

    def wait_final(self, job_id: str, *, timeout: float, tasks: int = 1) -> dict[str, str]:
        """Wait until the job (or its `tasks` array tasks) is in a final state; their states."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.scontrol_states(job_id)
            done = {k: v for k, v in states.items() if v in FINAL_STATES}
            if len(done) >= tasks and len(done) == len(states):
                return states
            time.sleep(0.5)
        msg = f"job {job_id} not finished after {timeout:.0f} s: {states}"
        raise TimeoutError(msg)

    def wait_accounted(self, job_id: str, *, timeout: float = 30) -> list[dict[str, str]]:
        """sacct's rows once every row of the job has a final state (slurmdbd lags a little)."""
        deadline = time.monotonic() + timeout
        rows: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            rows = self.sacct(job_id)
            if rows and all(r["State"].split()[0] in FINAL_STATES for r in rows):
                return rows
            time.sleep(0.5)
        msg = f"sacct has no final state for job {job_id} after {timeout:.0f} s: {rows}"
        raise TimeoutError(msg)


def _run_script(
    argv: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    # Own session: a Ctrl-C in the terminal reaches pytest only, never the cluster's daemons or
    # the teardown half-way; a second Ctrl-C while waiting is swallowed until it is done.
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            out, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            return subprocess.CompletedProcess(argv, proc.returncode, out, None)
        except KeyboardInterrupt:
            continue
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            return subprocess.CompletedProcess(
                argv, -9, out + f"\n(killed after {timeout} s)", None
            )


def start(root: Path) -> SlurmCluster:
    """Bring a cluster up under `root` (raises RuntimeError with the script's output)."""
    ctld, slurmd, dbd, db = _free_ports(4)
    env = dict(
        os.environ,
        CTLD_PORT=str(ctld),
        SLURMD_PORT=str(slurmd),
        DBD_PORT=str(dbd),
        DB_PORT=str(db),
    )
    t0 = time.monotonic()
    res = _run_script(["bash", str(UP), str(root)], env, timeout=120)
    took = time.monotonic() - t0
    if res.returncode != 0:
        logs = root / "log"
        msg = f"slurm-up.sh failed ({res.returncode}); daemon logs in {logs}:\n{res.stdout}"
        raise RuntimeError(msg)
    client = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    client["SLURM_CONF"] = str(root / "etc" / "slurm.conf")
    return SlurmCluster(root=root, env=client, up_seconds=took, up_log=res.stdout)


def stop(root: Path) -> str:
    """Cancel every job and stop the daemons started under `root`; idempotent. Its output."""
    res = _run_script(["bash", str(DOWN), str(root)], dict(os.environ), timeout=180)
    return res.stdout


@contextlib.contextmanager
def running_cluster(root: Path) -> Iterator[SlurmCluster]:
    """A cluster under `root` for the `with` block; torn down however the block ends."""

    def last_resort() -> None:  # should the block never reach its end
        stop(root)

    atexit.register(last_resort)
    try:
        cluster = start(root)
        old = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(cluster.conf)
        try:
            yield cluster
        finally:
            if old is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old
    finally:
        out = stop(root)
        atexit.unregister(last_resort)
        if "did not stop" in out:
            print(out)


@pytest.fixture(scope="session", name="slurm_cluster")
def slurm_cluster_fixture() -> Iterator[SlurmCluster]:
    """The lab cluster for the whole session (skips where SLURM is missing)."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    # a short path: the munge and mariadb sockets live in it (sun_path holds 107 bytes)
    root = Path(tempfile.mkdtemp(prefix="kp-slurm-"))
    with running_cluster(root) as cluster:
        yield cluster
    if not os.environ.get("KOHYA_PLAN_KEEP_SLURM_LAB"):  # set it to read the daemons' logs
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import sys

    why = skip_reason()
    if why:
        sys.exit(why)
    where = Path(tempfile.mkdtemp(prefix="kp-slurm-"))
    with running_cluster(where) as lab:
        print(lab.up_log)
        print(lab.run("sinfo"))
        probe = where / "probe.sbatch"
        probe.write_text("#!/bin/bash\n#SBATCH --mem=100\necho probe on $(hostname)\n")
        job = lab.sbatch(probe, f"--output={where}/probe-%j.out")
        print(job, lab.wait_final(job, timeout=60), lab.wait_accounted(job))
    shutil.rmtree(where, ignore_errors=True)
