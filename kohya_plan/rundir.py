"""THE owner of a run folder: the name of every file in it, creating it, atomic writes, read-back.

A run folder is made once by `make` (never reused, never overwritten) and then written by
`launch` while the trainer runs. No other module spells these file names: they ask a `RunDir`
for paths, write through `write_json`/`write_text` (write to a temporary sibling, then
`os.replace`, so a reader never sees half a file), and read back through `read_json`, which
turns a missing, unreadable or hand-mangled file into a `RunDirError` that names the file and
the way out. Stdlib only; it sits at the bottom of the house so that every stage may use it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_plan.errors import UsageError, os_error_text

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "ACCELERATE_CONFIG",
    "CHECK",
    "COMMAND_PS1",
    "COMMAND_SH",
    "COMPARE",
    "CONFIG",
    "DATASET",
    "EXIT",
    "JOB_SBATCH",
    "LAUNCH",
    "LOCK",
    "LOG",
    "LOGS",
    "LR_FIND_JSON",
    "LR_FIND_PNG",
    "MANIFEST",
    "NOTES",
    "PLAN",
    "PLAN_SOURCE",
    "PROMPTS",
    "REPORT",
    "SLURM_ARRAY_OUTPUT",
    "SLURM_JOB",
    "SLURM_OUTPUT",
    "SUMMARY",
    "SWEEP",
    "SWEEP_QUEUE",
    "TRAINER",
    "LaunchRecord",
    "RunDir",
    "RunDirError",
    "creating",
    "fill",
    "launch_digest",
    "next_run_dir",
    "write_json_atomic",
    "write_text_atomic",
]

# What `make` writes (in this order), then what `launch` adds.
PLAN = "plan.toml"
"""The validated plan, every default spelled out: a run folder is its own record."""
PLAN_SOURCE = "plan.source.toml"
"""The plan file exactly as the user wrote it."""
DATASET = "dataset.toml"
CONFIG = "config.toml"
PROMPTS = "prompts.txt"
COMMAND_SH = "command.sh"
COMMAND_PS1 = "command.ps1"
ACCELERATE_CONFIG = "accelerate.json"
"""The run's own accelerate config (`--config_file`): no default config file is ever read."""
JOB_SBATCH = "job.sbatch"
"""The SLURM job script (`make --slurm`), for `kohya-plan submit`."""
CHECK = "check.json"
"""What `check` found when the run was made: facts, findings, steps, resolved inputs."""
LAUNCH = "launch.json"
"""The exact argv, cwd and environment additions that `launch RUN_DIR` runs, and their digest
(`launch_digest`): a hand-edited command is refused unless trusted explicitly."""
LOCK = "launch.lock"
"""Locked (kohya_plan.run.locks) while a launch of this folder runs; its note names the holder."""
LOG = "train.log"
"""Everything the trainer printed, byte for byte, as it arrived."""
EXIT = "exit.json"
"""How kohya-plan ran the trainer: written at the start (with kohya-plan's own pid and start
time, so `stop` and `summary` know whether it still runs), rewritten at the end."""
TRAINER = "trainer.json"
"""The guardian's record of the trainer process: pid and start time, then how it ended — also
when kohya-plan itself was gone by then."""
NOTES = "kohya-plan.log"
"""kohya-plan's own notes on the run, with times (stall warnings, a closed terminal, a log that
could not be written, what the guardian did after kohya-plan was gone); train.log stays the
trainer's bytes only."""
SUMMARY = "summary.json"
MANIFEST = "manifest.json"
"""Epoch/step → LoRA file, and the epoch-numbered copy of the final file (T29)."""
REPORT = "report.html"
LOGS = "logs"
"""sd-scripts' --logging_dir (TensorBoard event files)."""
LR_FIND_PNG = "lr-find.png"
LR_FIND_JSON = "lr-find.json"
SLURM_JOB = "slurm.json"
"""The SLURM job(s) `submit` started for this folder: job ids, when, how."""
SLURM_OUTPUT = "slurm-%j.out"
"""sbatch's --output pattern of a run's job (``%j``: the job id)."""
SLURM_ARRAY_OUTPUT = "slurm-%A_%a.out"
"""sbatch's --output pattern of a sweep's job array (``%A``: array job id, ``%a``: task)."""
SWEEP = "sweep.json"
"""A sweep folder's record: the grid, its points and their run folders."""
SWEEP_QUEUE = "queue.json"
"""A sweep's local queue: which points ran, how they ended (resumed after a stop)."""
COMPARE = "compare.html"

MADE_BY_MAKE = (
    PLAN,
    PLAN_SOURCE,
    DATASET,
    CONFIG,
    PROMPTS,
    COMMAND_SH,
    COMMAND_PS1,
    ACCELERATE_CONFIG,
    CHECK,
    LAUNCH,
)


def slurm_log_name(job_id: str, array_task: int | None = None) -> str:
    """The file a job's output goes to (`SLURM_OUTPUT`, `SLURM_ARRAY_OUTPUT` filled in)."""
    if array_task is None:
        return SLURM_OUTPUT.replace("%j", job_id)
    return SLURM_ARRAY_OUTPUT.replace("%A", job_id).replace("%a", str(array_task))


def slurm_machine_log_name(job_log: str, machine: int | str) -> str:
    """Where machine N > 0 of a job writes its trainer's output (beside the job's own log,
    which holds machine 0's): ``slurm-123.out`` → ``slurm-123.machine1.out``."""
    return f"{job_log.removesuffix('.out')}.machine{machine}.out"


class RunDirError(UsageError):
    """A run folder, or a file in it, is missing or cannot be read (exit 2)."""


def launch_digest(argv: list[str], cwd: str, env: dict[str, str]) -> str:
    """`sha256:<hex>` of what launch.json says to run: argv, working folder, environment."""
    canonical = json.dumps(
        {"argv": argv, "cwd": cwd, "env": env}, sort_keys=True, ensure_ascii=False
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LaunchRecord:
    """launch.json read back: what to run, and whether it is what `make` wrote."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    edited: bool
    """The file was changed after `make` (and the caller chose to trust it)."""


@dataclass(frozen=True)
class RunDir:
    """One run folder and the paths of its files (absolute: sd-scripts runs elsewhere)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", self.path.expanduser().absolute())

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def plan(self) -> Path:
        return self.path / PLAN

    @property
    def dataset_toml(self) -> Path:
        return self.path / DATASET

    @property
    def config_toml(self) -> Path:
        return self.path / CONFIG

    @property
    def prompts(self) -> Path:
        return self.path / PROMPTS

    @property
    def accelerate_config(self) -> Path:
        return self.path / ACCELERATE_CONFIG

    @property
    def job_sbatch(self) -> Path:
        return self.path / JOB_SBATCH

    @property
    def logging_dir(self) -> Path:
        return self.path / LOGS

    @property
    def log(self) -> Path:
        return self.path / LOG

    @property
    def lock(self) -> Path:
        return self.path / LOCK

    @property
    def report(self) -> Path:
        return self.path / REPORT

    def is_made(self) -> bool:
        """Whether `make` made this folder (it holds launch.json)."""
        return (self.path / LAUNCH).is_file()

    def was_launched(self) -> bool:
        """Whether `launch` ever started the trainer here (train.log exists) or `submit`
        handed it to SLURM (slurm.json exists)."""
        return (self.path / LOG).exists() or (self.path / SLURM_JOB).exists()

    def trainer_log(self) -> Path:
        """Where the trainer's output is: train.log, or a SLURM job's log (slurm.json names
        it; machine 0's output for a job over several machines)."""
        if (self.path / LOG).exists() or not (self.path / SLURM_JOB).is_file():
            return self.path / LOG
        try:
            data = self.read_json(SLURM_JOB)
        except RunDirError:
            return self.path / LOG
        name = data.get("log") if data else None
        return self.path / name if isinstance(name, str) and "/" not in name else self.path / LOG

    def require_made(self) -> RunDir:
        """Self, or a RunDirError when this is not a folder made by `make`."""
        if not self.path.is_dir():
            msg = f"{self.path} is not a folder — give a run folder made by `kohya-plan make`"
            raise RunDirError(msg)
        if not self.is_made():
            msg = (
                f"{self.path} is not a run folder (no {LAUNCH}) — give a folder made by "
                "`kohya-plan make`, or a plan file"
            )
            raise RunDirError(msg)
        return self

    def read_json(self, name: str, *, required: bool = True) -> dict[str, Any] | None:
        """A JSON object file of this run; a clear RunDirError when missing or corrupt.

        With ``required=False`` a missing file is None (a corrupt one is still an error).
        """
        path = self.path / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if not required:
                return None
            msg = f"{path} is missing — the run folder is incomplete; make a new one with `make`"
            raise RunDirError(msg) from None
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"{path} cannot be read ({exc}) — check its permissions, or make a new run"
            raise RunDirError(msg) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = (
                f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); it was edited or cut "
                "short — restore it, or make a new run folder with `make`"
            )
            raise RunDirError(msg) from None
        if not isinstance(data, dict):
            msg = f"{path} holds {type(data).__name__}, not a JSON object — restore it"
            raise RunDirError(msg)
        return data

    def read_text(self, name: str) -> str | None:
        """A text file of this run, or None when it is missing or unreadable."""
        try:
            return (self.path / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def read_launch(self, *, trust_edited: bool = False) -> LaunchRecord:
        """launch.json, checked against the digest `make` recorded in it.

        A changed command (argv, working folder or environment) is refused with the way out,
        unless ``trust_edited``: kohya-plan never runs a program it did not write without
        saying so.
        """
        path = self.path / LAUNCH
        data = self.read_json(LAUNCH)
        assert data is not None
        argv, cwd, env = data.get("argv"), data.get("cwd"), data.get("env", {})
        well_formed = (
            isinstance(argv, list)
            and bool(argv)
            and all(isinstance(a, str) for a in argv)
            and isinstance(cwd, str)
            and isinstance(env, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        )
        if not well_formed:
            msg = (
                f"{path} does not hold a command (argv: a list of strings, cwd: a string, env: "
                "strings) — it was edited or cut short; make a new run folder with "
                f"`kohya-plan launch {self.plan}`"
            )
            raise RunDirError(msg)
        assert isinstance(argv, list)
        assert isinstance(cwd, str)
        assert isinstance(env, dict)
        edited = data.get("digest") != launch_digest(argv, cwd, env)
        if edited and not trust_edited:
            msg = (
                f"{path} was changed after `make` (its command no longer matches the digest "
                "recorded when it was written), and kohya-plan does not run a command it did "
                f"not write without being told — make a new run folder: `kohya-plan launch "
                f"{self.plan}`, or run the edited command on purpose: `kohya-plan launch "
                f"{self.path} --trust-edited`"
            )
            raise RunDirError(msg)
        return LaunchRecord(list(argv), Path(cwd), dict(env), edited)

    def write_json(self, name: str, data: object) -> Path:
        """Write a JSON file of this run atomically."""
        return write_json_atomic(self.path / name, data)

    def write_text(self, name: str, text: str) -> Path:
        """Write a text file of this run atomically."""
        return write_text_atomic(self.path / name, text)


_O_BINARY = getattr(os, "O_BINARY", 0)


def _write_file(path: Path, data: bytes, *, exclusive: bool, sync: bool) -> None:
    """Every byte of ``data`` into ``path`` through ``os.write`` (one place for the disk to fail).

    ``exclusive``: a new file only (FileExistsError otherwise), never an overwrite.
    """
    flags = os.O_WRONLY | os.O_CREAT | _O_BINARY | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    except OSError as exc:
        raise _naming(exc, path) from exc
    finally:
        os.close(fd)


def _naming(exc: OSError, path: Path) -> OSError:
    """The same error (same class, by errno) with ``path`` as its file name."""
    return OSError(exc.errno, exc.strerror, os.fspath(path))


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary sibling, then rename it over ``path`` (never half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _write_file(tmp, text.encode("utf-8"), exclusive=False, sync=True)
        tmp.replace(path)
    except OSError as exc:
        raise _naming(exc, path) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def write_json_atomic(path: Path, data: object) -> Path:
    """Write ``data`` as indented UTF-8 JSON, atomically.

    A file name that is not UTF-8 (a lone surrogate in Python) is kept as a ``\\udcXX``
    escape, which JSON allows and reads back to the same string.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(data, indent=2, ensure_ascii=True)
    return write_text_atomic(path, text + "\n")


def next_run_dir(runs_dir: Path, name: str, now: float | None = None) -> Path:
    """`<runs>/<name>-<YYYYmmdd-HHMMSS>`, with -2, -3 … if that folder exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    candidate = runs_dir / f"{name}-{stamp}"
    counter = 2
    while candidate.exists():
        candidate = runs_dir / f"{name}-{stamp}-{counter}"
        counter += 1
    return candidate


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; the folders it created, outermost first (to undo a failed make)."""
    missing: list[Path] = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    made: list[Path] = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            if not path.is_dir():
                raise
            continue  # made meanwhile by another `make`
        made.append(path)
    return made


def _unmake(made: list[Path]) -> None:
    for path in reversed(made):
        with contextlib.suppress(OSError):
            path.rmdir()  # only if still empty: another `make` may be using it


def _cannot(action: str, exc: OSError, path: object, fix: str) -> str:
    why, how = os_error_text(exc)
    return f"cannot {action} {path}: {why} — {how}{fix}"


@contextlib.contextmanager
def creating(runs_dir: Path, name: str) -> Iterator[RunDir]:
    """A NEW, empty run folder for the block to fill; removed again if the block fails.

    The folder appears with an exclusive ``mkdir``, so two `make` in the same second get two
    folders and an existing folder is never reused. If anything in the block raises (a full
    disk, a read-only folder, Ctrl-C), everything in the folder is removed with it, and so are
    the folders above it that this call created: a failed `make` leaves nothing behind. A
    file-system error becomes a RunDirError (exit 2) naming the path, the cause and the fix.
    """
    made: list[Path] = []
    path = runs_dir
    parents_done = False
    try:
        made = _make_parents(runs_dir)
        parents_done = True
        while True:
            path = next_run_dir(runs_dir, name)
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue  # made meanwhile by another `make`
    except OSError as exc:
        _unmake(made)
        if exc.errno == errno.ENAMETOOLONG and parents_done:
            msg = (
                f"cannot create a run folder in {runs_dir}: its name would be too long for "
                f"the file system — shorten output.name ({len(os.fsencode(name))} bytes; run "
                "folders are named <name>-YYYYmmdd-HHMMSS)"
            )
            raise RunDirError(msg) from None
        where = "the run folder in" if parents_done else "the runs folder"
        msg = _cannot(f"create {where}", exc, runs_dir, " (output.runs_dir)")
        raise RunDirError(msg) from None
    try:
        yield RunDir(path)
    except BaseException as exc:
        shutil.rmtree(path, ignore_errors=True)
        _unmake(made)
        if isinstance(exc, OSError):
            target = exc.filename if exc.filename is not None else path
            msg = _cannot(
                "write",
                exc,
                target,
                f" (output.runs_dir); nothing was kept ({path} was removed)",
            )
            raise RunDirError(msg) from exc
        raise


def fill(
    run: RunDir,
    files: dict[str, str],
    *,
    source: bytes,
    check: dict[str, Any],
    launch: dict[str, Any],
) -> None:
    """Write what `make` writes: the rendered files, the plan as written, check.json, launch.json.

    Files are created exclusively (nothing is ever overwritten); launch.json comes last, so its
    presence marks a complete run folder.
    """
    for file_name, text in files.items():
        _write_file(run.path / file_name, text.encode("utf-8"), exclusive=True, sync=False)
    if (run.path / COMMAND_SH).exists():
        (run.path / COMMAND_SH).chmod(0o755)
    _write_file(run.path / PLAN_SOURCE, source, exclusive=True, sync=False)
    run.write_json(CHECK, check)
    digest = launch_digest(list(launch["argv"]), str(launch["cwd"]), dict(launch["env"]))
    run.write_json(LAUNCH, {**launch, "digest": digest})
