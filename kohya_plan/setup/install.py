"""`kohya-plan setup`: an sd-scripts checkout and its own virtual environment, step by step.

Steps, in order: the checkout (git, at the commit the option snapshot was made from), the
virtual environment, torch + torchvision first (chosen for the machine), sd-scripts'
requirements.txt without its `-e .` line, sd-scripts itself (editable) with kohya-plan's
extras, and an import check. Each step first looks at what is really there (git HEAD, the
venv's installed distributions) and runs only when that is not right, so a second run checks
and repairs. Interrupting is safe: the checkout is cloned into `<dir>.partial` and renamed
when complete; the venv's record is written before the venv is created and the step is
stamped only after it, so a half-made venv (ours) is removed and made again. Nothing outside
the chosen folders is touched; a folder that kohya-plan did not make is never deleted.

This module stays long because the six steps are check/run pairs over one shared context,
read in the order they run; each is short, and apart they would hide that order.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from kohya_plan.errors import KohyaPlanError, UsageError
from kohya_plan.inputs.installation import MADE_BY, Layout, layout, read_record
from kohya_plan.setup.choices import (
    EXTRAS,
    GITHUB_URL,
    Device,
    Installer,
    TorchChoice,
    build_problem,
    choose_torch,
    normalize,
    parse_cuda_version,
    requirement_pins,
    requirements_without_editable,
    unmet,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

StepStatus = Literal["ok", "done", "needed", "failed"]
MARKER = "kohya-plan-managed"  # in the checkout's .git: kohya-plan cloned it
REQUIREMENTS_COPY = "kohya-plan-requirements.txt"
SD_SCRIPTS_DIST = "library"  # sd-scripts' setup.py names its distribution `library`
VERIFY_IMPORTS = "import torch, torchvision, accelerate, library, networks.lora"
_GIT_TIMEOUT_S = 30.0
_PROBE_TIMEOUT_S = 120.0


class SetupError(KohyaPlanError):
    """A setup step could not be done; the message says which and what to do."""

    exit_code = 1


@dataclass(frozen=True)
class SetupOptions:
    """What `kohya-plan setup` was asked for."""

    home: Path | None = None
    sd_scripts: Path | None = None
    venv: Path | None = None
    source: str = GITHUB_URL
    commit: str | None = None
    torch: str | None = None
    device: Device = "auto"
    torch_index: str | None = None
    python: str | None = None
    installer: Literal["auto", "uv", "pip"] = "auto"
    find_links: tuple[str, ...] = ()
    no_index: bool = False


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """How one step went: already right, done now, still needed (--check), or failed."""

    name: str
    title: str
    status: StepStatus
    detail: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class SetupReport:
    """Every step's outcome, and where the installation is."""

    layout: Layout
    commit: str
    torch: TorchChoice
    installer: str
    steps: list[StepOutcome] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(s.status in ("ok", "done") for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        """The `setup --json` document."""
        return {
            "complete": self.complete,
            "home": str(self.layout.home),
            "sd_scripts": str(self.layout.sd_scripts),
            "python": str(self.layout.python),
            "commit": self.commit,
            "torch": self.torch.key,
            "torch_why": self.torch.why,
            "installer": self.installer,
            "steps": [
                {"name": s.name, "title": s.title, "status": s.status, "detail": s.detail}
                for s in self.steps
            ],
        }


class SetupView(Protocol):
    """What shows setup's progress (see display.setup_view)."""

    def step(self, index: int, total: int, title: str) -> None: ...

    def line(self, text: str) -> None: ...

    def done(self, outcome: StepOutcome) -> None: ...


class _Quiet:
    def step(self, index: int, total: int, title: str) -> None:
        pass

    def line(self, text: str) -> None:
        pass

    def done(self, outcome: StepOutcome) -> None:
        pass


# --- the steps ------------------------------------------------------------------------------


@dataclass
class _Context:
    layout: Layout
    options: SetupOptions
    commit: str
    torch: TorchChoice
    installer: Installer
    view: SetupView
    record: dict[str, Any] = field(default_factory=dict)

    def installed(self) -> dict[str, Any] | None:
        """The venv's distributions (installed.py), or None when the venv does not run."""
        python = self.layout.python
        if not python.is_file():
            return None
        from kohya_plan.run.capture import capture

        try:
            status, out = capture([str(python), str(script_path("installed.py"))], _PROBE_TIMEOUT_S)
        except (OSError, TimeoutError):
            return None
        if status != 0:
            return None
        try:
            data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None
        return data

    def stream(self, argv: list[str], what: str, fix: str, cwd: Path | None = None) -> None:
        from kohya_plan.run.stream import stream

        try:
            result = stream(argv, on_line=self.view.line, cwd=cwd, env=_tool_env())
        except OSError as exc:
            msg = f"{what}: cannot run {argv[0]} ({exc}) — {fix}"
            raise SetupError(msg) from None
        if result.returncode != 0:
            msg = (
                f"{what} failed (exit status {result.returncode}) — {fix}\n"
                f"  command: {_display(argv)}\n  last lines:\n    "
                + "\n    ".join(result.tail[-15:])
            )
            raise SetupError(msg)

    def stamp(self, name: str, key: str) -> None:
        self.record.setdefault("steps", {})[name] = {"key": key, "at": time.time()}
        _write_record(self.layout, self.record)


@dataclass(frozen=True)
class _Step:
    name: str
    title: Callable[[_Context], str]
    check: Callable[[_Context], str | None]  # None: already right; else what is wrong
    run: Callable[[_Context], str]  # returns a detail line
    needs: tuple[str, ...] = ()  # steps whose folder must be there for this check to mean much


def _display(argv: Sequence[str]) -> str:
    import shlex

    return shlex.join(argv)


def _tool_env() -> dict[str, str]:
    # Tools print plainly (no colour codes, no interactive prompts).
    return {**os.environ, "PYTHONUNBUFFERED": "1", "GIT_TERMINAL_PROMPT": "0", "NO_COLOR": "1"}


def script_path(name: str) -> Path:
    """A helper script shipped with kohya-plan, run in another interpreter."""
    return Path(str(resources.files("kohya_plan.setup").joinpath("scripts", name)))


def _git(args: list[str], cwd: Path | None = None) -> tuple[int, str]:
    from kohya_plan.run.capture import capture

    try:
        return capture(["git", *args] if cwd is None else ["git", "-C", str(cwd), *args], 600)
    except OSError as exc:
        msg = f"git is needed for the sd-scripts checkout and cannot run ({exc}) — install git"
        raise SetupError(msg) from None
    except TimeoutError as exc:
        raise SetupError(str(exc)) from None


def git_head(path: Path) -> str | None:
    """The commit a git checkout is at, or None when it is not one."""
    if not (path / ".git").exists():
        return None
    status, out = _git(["rev-parse", "HEAD"], cwd=path)
    return out.strip() if status == 0 else None


def _missing_files(path: Path) -> list[str]:
    """Files of the commit that are not in the work tree (a source lacking their objects)."""
    status, out = _git(["status", "--porcelain"], cwd=path)
    if status != 0:
        return []
    return [line[3:] for line in out.splitlines() if line.startswith(" D ")]


def _source(options: SetupOptions) -> str:
    """A local --from path made absolute (git runs in other folders); a URL as given."""
    source = options.source
    if "://" in source or source.startswith("git@"):
        return source
    path = Path(source).expanduser()
    if not path.exists():
        msg = f"--from {source}: no such folder — give a git URL, a mirror or a checkout"
        raise UsageError(msg)
    return str(path.absolute())


def _checkout_title(ctx: _Context) -> str:
    return f"sd-scripts {ctx.commit[:10]} in {ctx.layout.sd_scripts}"


def _is_empty(path: Path) -> bool:
    """Missing, or an empty folder (e.g. a git submodule that was never initialised)."""
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def _checkout_check(ctx: _Context) -> str | None:
    path = ctx.layout.sd_scripts
    if _is_empty(path):
        return "not there yet"
    head = git_head(path)
    if head is None:
        return f"{path} is not a git checkout"
    if head != ctx.commit:
        return f"at {head[:10]}, not {ctx.commit[:10]}"
    return None


def _checkout_run(ctx: _Context) -> str:
    path = ctx.layout.sd_scripts
    source = _source(ctx.options)
    fix = f"check that --from {ctx.options.source} is reachable and holds {ctx.commit[:10]}"
    if not _is_empty(path):
        head = git_head(path)
        if head is None or not (path / ".git" / MARKER).exists():
            where = "is not a git checkout" if head is None else f"is a checkout at {head[:10]}"
            msg = (
                f"{path} {where} that kohya-plan did not make; it is left alone — "
                f"check out {ctx.commit} there yourself (`git -C {path} checkout {ctx.commit}`), "
                "or choose another --sd-scripts / --dir"
            )
            raise SetupError(msg)
        ctx.stream(["git", "-C", str(path), "fetch", source, ctx.commit], "git fetch", fix)
        _checkout_commit(ctx, path, source)
        return f"moved from {head[:10]} to {ctx.commit[:10]}"
    partial = path.with_name(path.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # an interrupted clone of ours
    path.parent.mkdir(parents=True, exist_ok=True)
    ctx.stream(
        ["git", "clone", "--progress", "--no-checkout", source, str(partial)], "git clone", fix
    )
    _checkout_commit(ctx, partial, source)
    (partial / ".git" / MARKER).write_text(f"{MADE_BY} from {ctx.options.source}\n")
    missing = _missing_files(partial)
    if path.is_dir():
        path.rmdir()  # empty: nothing to lose
    partial.rename(path)
    if missing:
        shown = ", ".join(missing[:3]) + (" …" if len(missing) > 3 else "")
        return (
            f"cloned; {len(missing)} file(s) of the commit were not in the source and are "
            f"missing: {shown} (not used by LoRA training; use a complete source to get them)"
        )
    return f"cloned from {ctx.options.source}"


def _checkout_commit(ctx: _Context, path: Path, source: str) -> None:
    status, out = _git(["checkout", "--quiet", "--detach", ctx.commit], cwd=path)
    if status != 0 and "would be overwritten" in out:
        msg = (
            f"local changes in {path} block the checkout of {ctx.commit[:10]} — keep them "
            f"with `git -C {path} stash` (or discard them with `git -C {path} checkout .`), "
            "then run setup again\n  git said: " + " ".join(out.split())[:400]
        )
        raise SetupError(msg)
    if status != 0 or git_head(path) != ctx.commit:
        msg = (
            f"commit {ctx.commit} is not in {source} — update that mirror (`git fetch`), or "
            f"give a source that has it with --from (default {GITHUB_URL})\n  git said: "
            + " ".join(out.split())[:400]
        )
        raise SetupError(msg)


def _venv_title(ctx: _Context) -> str:
    return f"virtual environment {ctx.layout.venv}"


def _venv_check(ctx: _Context) -> str | None:
    venv = ctx.layout.venv
    if not venv.exists():
        return "not there yet"
    if "venv" not in ctx.record.get("steps", {}):
        if ctx.record:
            return "half made (interrupted)"
        return "not made by kohya-plan"
    data = ctx.installed()
    if data is None:
        return f"{ctx.layout.python} does not run"
    if Path(str(data["prefix"])).resolve() != venv.resolve():
        return f"{ctx.layout.python} belongs to {data['prefix']}"
    return None


def _venv_run(ctx: _Context) -> str:
    venv = ctx.layout.venv
    base = ctx.options.python or sys.executable
    if venv.exists():
        if ctx.record:
            shutil.rmtree(venv)  # ours, half made or broken: make it again
        elif (venv / "pyvenv.cfg").is_file():
            # A virtual environment made some other way (e.g. by the old script): use it.
            data = ctx.installed()
            if data is None:
                msg = (
                    f"{venv} is a virtual environment kohya-plan did not make and its Python "
                    "does not run; it is left alone — remove it, or choose another --venv"
                )
                raise SetupError(msg)
            ctx.record = _new_record(ctx)
            ctx.stamp("venv", f"adopted {data['python']}")
            return f"using the existing one (Python {data['python']})"
        elif any(venv.iterdir()):
            msg = (
                f"{venv} exists, is not a virtual environment and was not made by kohya-plan; "
                "it is left alone — choose another --venv or --dir"
            )
            raise SetupError(msg)
    venv.mkdir(parents=True, exist_ok=True)
    ctx.record = _new_record(ctx)
    _write_record(ctx.layout, ctx.record)
    argv = ctx.installer.venv_argv(base, venv)
    if ctx.installer.kind == "uv":
        argv.append("--allow-existing")  # the record is already there
    ctx.stream(argv, "creating the virtual environment", "check --python (or install venv)")
    data = ctx.installed()
    if data is None:
        msg = f"the new virtual environment's Python ({ctx.layout.python}) does not run"
        raise SetupError(msg)
    ctx.stamp("venv", f"Python {data['python']}")
    return f"Python {data['python']} ({base})"


def _new_record(ctx: _Context) -> dict[str, Any]:
    from kohya_plan import __version__

    return {
        "made_by": MADE_BY,
        "kohya_plan_version": __version__,
        "sd_scripts": str(ctx.layout.sd_scripts),
        "python": str(ctx.layout.python),
        "commit": ctx.commit,
        "torch": ctx.torch.key,
        "complete": False,
        "steps": {},
    }


def _write_record(where: Layout, record: dict[str, Any]) -> None:
    path = where.record
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _distributions(ctx: _Context) -> dict[str, str]:
    data = ctx.installed()
    return {} if data is None else {str(k): str(v) for k, v in data["distributions"].items()}


def _torch_title(ctx: _Context) -> str:
    where = ctx.torch.index_url or "the default index"
    return f"torch {ctx.torch.torch} + torchvision {ctx.torch.torchvision} from {where}"


def _torch_check(ctx: _Context) -> str | None:
    pins: dict[str, str | None] = {"torch": ctx.torch.torch, "torchvision": ctx.torch.torchvision}
    installed = _distributions(ctx)
    problems = unmet(pins, installed)
    if (wrong_build := build_problem(ctx.torch, installed)) is not None:
        problems.append(wrong_build)
    return ", ".join(problems) or None


def _torch_run(ctx: _Context) -> str:
    # The right version of another build (CUDA where --cpu was asked) counts as installed
    # for pip: replace it outright.
    wrong_build = build_problem(ctx.torch, _distributions(ctx)) is not None
    argv = ctx.installer.install_argv(
        ctx.layout.python,
        ctx.torch.specs,
        index_url=ctx.torch.index_url,
        reinstall=("torch", "torchvision") if wrong_build else (),
    )
    ctx.stream(argv, "installing torch", "see the output above; --torch-index sets the index")
    ctx.stamp("torch", ctx.torch.key)
    return ctx.torch.why


def _requirements(ctx: _Context) -> tuple[str, dict[str, str | None]]:
    path = ctx.layout.sd_scripts / "requirements.txt"
    try:
        text = requirements_without_editable(path.read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"cannot read {path} ({exc}) — the checkout is incomplete; run setup again"
        raise SetupError(msg) from None
    return text, requirement_pins(text)


def _requirements_title(ctx: _Context) -> str:
    return "sd-scripts' requirements.txt (without its `-e .` line)"


def _requirements_check(ctx: _Context) -> str | None:
    if not (ctx.layout.sd_scripts / "requirements.txt").is_file():
        return "needs the checkout"
    _, pins = _requirements(ctx)
    problems = unmet(pins, _distributions(ctx))
    if not problems:
        return None
    return ", ".join(problems[:4]) + (f" (+{len(problems) - 4} more)" if len(problems) > 4 else "")


def _requirements_run(ctx: _Context) -> str:
    text, pins = _requirements(ctx)
    copy = ctx.layout.venv / REQUIREMENTS_COPY
    copy.write_text(text, encoding="utf-8")
    # torch is named again so that no requirement can move it off the chosen build.
    argv = ctx.installer.install_argv(ctx.layout.python, ctx.torch.specs, requirements=copy)
    ctx.stream(argv, "installing sd-scripts' requirements", "see the output above")
    ctx.stamp("requirements", ", ".join(f"{k}=={v}" if v else k for k, v in pins.items()))
    return f"{len(pins)} requirements"


def _sd_scripts_title(ctx: _Context) -> str:
    return f"sd-scripts itself (editable) and {', '.join(EXTRAS)}"


def _editable_url(path: Path) -> str:
    return path.absolute().as_uri()


def _sd_scripts_check(ctx: _Context) -> str | None:
    data = ctx.installed()
    if data is None:
        return "needs the virtual environment"
    editable = {str(k): str(v) for k, v in data.get("editable", {}).items()}
    problems = []
    url = editable.get(SD_SCRIPTS_DIST)
    if url is None:
        problems.append("sd-scripts (library) not installed")
    elif url.rstrip("/") != _editable_url(ctx.layout.sd_scripts):
        problems.append(f"sd-scripts installed from {url}")
    extras: dict[str, str | None] = {}
    for spec in EXTRAS:
        name, _, version = spec.partition("==")
        extras[normalize(name)] = version or None
    problems += unmet(extras, {str(k): str(v) for k, v in data["distributions"].items()})
    return ", ".join(problems) or None


def _sd_scripts_run(ctx: _Context) -> str:
    argv = ctx.installer.install_argv(
        ctx.layout.python, [*EXTRAS, *ctx.torch.specs], editable=ctx.layout.sd_scripts
    )
    ctx.stream(argv, "installing sd-scripts", "see the output above")
    ctx.stamp("sd-scripts", ctx.commit)
    return "editable install of the checkout"


def _verify_title(ctx: _Context) -> str:
    return "import check: torch, torchvision, accelerate, library, networks.lora"


def _verify_check(ctx: _Context) -> str | None:
    from kohya_plan.run.capture import capture

    python, checkout = ctx.layout.python, ctx.layout.sd_scripts
    if not python.is_file() or not checkout.is_dir():
        return "needs the steps above"
    # `networks` comes from sd-scripts' folder, as when the trainer runs there.
    code = f"import sys; sys.path.insert(0, {str(checkout)!r}); {VERIFY_IMPORTS}"
    try:
        status, out = capture([str(python), "-c", code], _PROBE_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        return str(exc)
    return None if status == 0 else (out.strip().splitlines() or ["(no output)"])[-1]


def _verify_run(ctx: _Context) -> str:
    why = _verify_check(ctx)
    if why is not None:
        msg = (
            f"the new environment does not import what sd-scripts needs: {why} — run "
            "`kohya-plan setup` again to repair it, or `kohya-plan doctor` for details"
        )
        raise SetupError(msg)
    return "all import"


STEPS = (
    _Step("checkout", _checkout_title, _checkout_check, _checkout_run),
    _Step("venv", _venv_title, _venv_check, _venv_run),
    _Step("torch", _torch_title, _torch_check, _torch_run, ("venv",)),
    _Step(
        "requirements",
        _requirements_title,
        _requirements_check,
        _requirements_run,
        ("checkout", "venv"),
    ),
    _Step(
        "sd-scripts", _sd_scripts_title, _sd_scripts_check, _sd_scripts_run, ("checkout", "venv")
    ),
    _Step("verify", _verify_title, _verify_check, _verify_run, ("checkout", "venv")),
)


# --- the entry points -----------------------------------------------------------------------


def _installer(options: SetupOptions) -> Installer:
    uv = shutil.which("uv")
    if options.installer == "uv" and uv is None:
        msg = "--installer uv: uv is not on PATH — install it (pipx install uv) or use pip"
        raise UsageError(msg)
    kind: Literal["uv", "pip"] = (
        "uv" if options.installer == "uv" or (options.installer == "auto" and uv) else "pip"
    )
    return Installer(
        kind,
        uv=uv if kind == "uv" else None,
        find_links=tuple(str(Path(p).expanduser().absolute()) for p in options.find_links),
        no_index=options.no_index,
    )


def _machine_gpus() -> tuple[int, tuple[int, int] | None]:
    """NVIDIA GPUs nvidia-smi lists, and the newest CUDA its driver runs."""
    from kohya_plan.inputs.hardware import NVIDIA_SMI, query_gpus
    from kohya_plan.run.capture import capture

    if shutil.which(NVIDIA_SMI) is None:
        return 0, None
    gpus, _ = query_gpus()
    try:
        _, banner = capture([NVIDIA_SMI], 10.0)
    except (OSError, TimeoutError):
        banner = ""
    return len(gpus), parse_cuda_version(banner)


def plan_setup(
    options: SetupOptions, *, machine: tuple[int, tuple[int, int] | None] | None = None
) -> tuple[Layout, str, TorchChoice, Installer]:
    """What setup would install where (no changes): the layout, commit, torch and installer."""
    import platform

    from kohya_plan.options import sd_scripts_commit

    where = layout(options.home, sd_scripts=options.sd_scripts, venv=options.venv)
    gpus, driver = machine if machine is not None else _machine_gpus()
    torch = choose_torch(
        version=options.torch,
        device=options.device,
        system=platform.system(),
        gpus=gpus,
        driver_cuda=driver,
        index_url=options.torch_index,
    )
    return where, options.commit or sd_scripts_commit(), torch, _installer(options)


def setup(
    options: SetupOptions,
    view: SetupView | None = None,
    *,
    check_only: bool = False,
    machine: tuple[int, tuple[int, int] | None] | None = None,
) -> SetupReport:
    """Make (or with check_only, only inspect) the installation; every step's outcome.

    `machine` (GPU count, driver CUDA) replaces asking nvidia-smi, for tests.
    Raises SetupError when a step fails, UsageError for an impossible request.
    """
    where, commit, torch, installer = plan_setup(options, machine=machine)
    view = view or _Quiet()
    ctx = _Context(where, options, commit, torch, installer, view)
    ctx.record = read_record(where.record) or {}
    report = SetupReport(where, commit, torch, installer.kind)
    absent: set[str] = set()  # (--check) steps whose folder is not there
    for index, step in enumerate(STEPS, 1):
        title = step.title(ctx)
        view.step(index, len(STEPS), title)
        started = time.monotonic()
        waiting = [name for name in step.needs if name in absent]
        why = f"needs the {' and '.join(waiting)} first" if waiting else step.check(ctx)
        if why is None:
            outcome = StepOutcome(step.name, title, "ok", "already right")
        elif check_only:
            outcome = StepOutcome(step.name, title, "needed", why)
            # Later checks still mean something unless the folder they look into is missing.
            folder = {"checkout": where.sd_scripts, "venv": where.python}.get(step.name)
            if folder is not None and _is_empty(folder):
                absent.add(step.name)
        else:
            if ctx.record.get("complete"):
                # Being changed: not complete until every step is right again (a kill now
                # must not leave a record that plans would trust).
                ctx.record["complete"] = False
                _write_record(where, ctx.record)
            try:
                detail = step.run(ctx)
            except SetupError:
                view.done(StepOutcome(step.name, title, "failed", why))
                raise
            outcome = StepOutcome(
                step.name, title, "done", f"{why} → {detail}", time.monotonic() - started
            )
        view.done(outcome)
        report.steps.append(outcome)
    if not check_only and report.complete:
        ctx.record.update({"complete": True, "completed_at": time.time()})
        ctx.record["torch"] = torch.key
        _write_record(where, ctx.record)
    elif not check_only:
        ctx.record["complete"] = False
        with contextlib.suppress(OSError):
            _write_record(where, ctx.record)
    return report
