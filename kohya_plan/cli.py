"""Command-line interface: thin click commands over the library (the only click importer)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kohya_plan import __version__

if TYPE_CHECKING:
    from collections.abc import Iterator
from kohya_plan.errors import EXIT_INTERNAL, EXIT_STOPPED, KohyaPlanError, PlanError

_SET_HELP = "Override a plan key, typed as TOML: --set training.epochs=5 (repeatable)."

_DURATION = re.compile(
    r"\s*([+-]?(?:[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?|nan|inf(?:inity)?))\s*(s|m|min|h)?\s*",
    re.IGNORECASE,
)
_UNIT_S = {None: 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def _human(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


class Seconds(click.ParamType):  # type: ignore[type-arg]  # generic only in click 8.2+
    """A duration: 90, 90s, 30m, 2h. Finite, not negative, within [minimum, maximum] (or 0
    when `off` allows it); NaN, infinity, negative and absurd values are usage errors."""

    name = "duration"

    def __init__(self, minimum: float, maximum: float, *, off: bool = False) -> None:
        self.minimum, self.maximum, self.off = minimum, maximum, off

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            match = _DURATION.fullmatch(str(value))
            if match is None:
                self.fail(
                    f"{value!r} is not a duration: give seconds (90), or 90s, 30m, 2h", param, ctx
                )
            seconds = float(match.group(1)) * _UNIT_S[(match.group(2) or "s").lower()]
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite duration", param, ctx)
        if seconds == 0 and self.off:
            return 0.0
        if not self.minimum <= seconds <= self.maximum:
            zero = " (0 turns it off)" if self.off else ""
            self.fail(
                f"{value!r} is out of range: give {_human(self.minimum)} to "
                f"{_human(self.maximum)}{zero}",
                param,
                ctx,
            )
        return seconds


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses NaN (which compares false with both bounds)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class _Group(click.Group):
    """Turns errors into messages and exit codes by kind; `--debug` shows the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PlanError as exc:
            if _debug(ctx):
                raise
            from kohya_plan import display

            display.problems(exc.findings)
            ctx.exit(exc.exit_code)
        except KohyaPlanError as exc:
            if _debug(ctx):
                raise
            from kohya_plan import display

            display.error(str(exc))
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            ctx.exit(EXIT_STOPPED)
        except Exception as exc:
            if _debug(ctx):
                raise
            from kohya_plan import display

            display.error(
                f"kohya-plan failed unexpectedly ({type(exc).__name__}: {exc}) — run the "
                "command again with --debug to see where, and please report it"
            )
            ctx.exit(EXIT_INTERNAL)


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.params.get("debug")) or os.environ.get("KOHYA_PLAN_DEBUG", "") not in ("", "0")


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from kohya_plan import display
    from kohya_plan.options import sd_scripts_commit

    display.plain(f"kohya-plan {__version__} (for kohya-ss/sd-scripts {sd_scripts_commit()})")
    ctx.exit()


_EPILOG = """
Exit status:
  0    done (a launched run succeeded)
  1    kohya-plan itself failed (a bug: --debug shows the traceback)
  2    the plan, its data or the command line is wrong (every problem is listed)
  3    the training failed (the summary names sd-scripts' cause)
  130  stopped (Ctrl-C, a signal)
"""


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=_EPILOG)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and the sd-scripts commit it was made for.",
)
@click.option(
    "--debug",
    is_flag=True,
    help="Show the full traceback of an error (also KOHYA_PLAN_DEBUG=1).",
)
def cli(debug: bool) -> None:
    """Plan, check and launch kohya-ss/sd-scripts LoRA training from one TOML file.

    \b
    Typical session:
      kohya-plan setup                        # sd-scripts + its Python, once (~6 GB)
      kohya-plan init my-lora                 # a commented plan.toml to edit
      kohya-plan import my_lora.json          # ... or one made from your kohya_ss config
      kohya-plan check my-lora/plan.toml      # every problem at once, and the exact steps
      kohya-plan make my-lora/plan.toml --dry-run   # the exact command, nothing written
      kohya-plan make my-lora/plan.toml       # a new run folder with all sd-scripts files
      kohya-plan launch my-lora/plan.toml     # run it supervised, with progress and a summary

    \b
    More GPUs, machines, a cluster, many runs:
      kohya-plan submit my-lora/plan.toml     # as a SLURM job; `status`, `stop` follow it
      kohya-plan sweep my-lora/plan.toml --grid network.dim=16,32   # one run per value
      kohya-plan compare SWEEP_DIR            # their samples side by side
    """


def _plan_file(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """PLAN may also be the folder `kohya-plan init` made (its plan.toml)."""
    from kohya_plan.loading import plan_file

    return plan_file(value)


plan_argument = click.argument(
    "plan_path", metavar="PLAN", type=click.Path(path_type=Path), callback=_plan_file
)
set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)


@cli.command()
@click.argument("folder", default=".", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--template", "-t", default="sd15-character", show_default=True, help="See `templates`."
)
def init(folder: Path, template: str) -> None:
    """Write a commented plan.toml into FOLDER (never overwrites).

    \b
    Examples:
      kohya-plan init xunxian
      kohya-plan init photos --template sd15-realistic
    """
    from kohya_plan import display
    from kohya_plan.templates import write_template

    target = write_template(template, folder)
    display.plain(f"Wrote {target} (template {template}). Edit it, then:")
    display.plain(f"  kohya-plan check {target}")


@cli.command(name="templates")
def templates_command() -> None:
    """List the built-in plan templates."""
    from kohya_plan import display
    from kohya_plan.templates import list_templates

    for template in list_templates():
        display.plain(f"{template.name:18} {template.description}")


@cli.command(name="rules")
def rules_command() -> None:
    """List every rule id (for rules.allow), its source and severity."""
    from kohya_plan import display
    from kohya_plan.rules import RULES

    display.plain(f"{'id':24} {'severity':8} {'source':11} {'waivable':9} what it checks")
    for rule in RULES.values():
        waivable = "yes" if rule.waivable else "no"
        display.plain(f"{rule.id:24} {rule.severity:8} {rule.ref:11} {waivable:9} {rule.title}")


@cli.command()
@plan_argument
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead.")
@click.option("--no-hardware", is_flag=True, help="Skip the GPU/RAM/disk advice for this machine.")
@click.option(
    "--vram",
    type=click.FloatRange(min=1),
    default=None,
    metavar="GIB",
    help="Plan for a GPU with this much memory (GiB): what to set for the plan to fit.",
)
@click.option(
    "--deep",
    is_flag=True,
    help="Also decode every image with Pillow, as sd-scripts will (finds damaged files).",
)
def check(
    plan_path: Path,
    overrides: tuple[str, ...],
    as_json: bool,
    no_hardware: bool,
    vram: float | None,
    deep: bool,
) -> None:
    """Validate PLAN against sd-scripts and the tutorial's rules; show the exact steps.

    Exit status: 0 when there are no errors (advice never changes it), 2 when there are.

    \b
    Examples:
      kohya-plan check plan.toml
      kohya-plan check plan.toml --set network.dim=32 --set network.alpha=16 --json
      kohya-plan check flux.toml --vram 12
      kohya-plan check plan.toml --deep
    """
    from kohya_plan import display
    from kohya_plan.checks.report import failed_report_json
    from kohya_plan.planning import check_plan

    try:
        with display.decode_progress(deep) as progress:
            report = check_plan(
                plan_path,
                overrides,
                hardware=not no_hardware,
                vram_gib=vram,
                deep="full" if deep else None,
                progress=progress,
            )
    except PlanError as exc:
        if not as_json:
            raise
        display.raw(json.dumps(failed_report_json(exc), indent=2, ensure_ascii=False) + "\n")
        raise SystemExit(2) from None
    if as_json:
        display.raw(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        display.check_report(report)
    if not report.ok:
        raise SystemExit(2)


@cli.command()
@plan_argument
@set_option
@click.option("--dry-run", is_flag=True, help="Print the command and files; write nothing.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the run folder, argv and files as JSON (with --dry-run: what it would write).",
)
@click.option(
    "--shell",
    type=click.Choice(["posix", "powershell"]),
    default="posix",
    show_default=True,
    help="How to quote the printed command.",
)
@click.option(
    "--slurm", is_flag=True, help="Also the SLURM job script job.sbatch ([slurm], or as [launch])."
)
def make(
    plan_path: Path,
    overrides: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
    shell: str,
    slurm: bool,
) -> None:
    """Render PLAN into a new run folder: dataset.toml, config.toml, prompts, command.

    Never reuses or overwrites a run folder. Blocked by errors that are not waived.

    \b
    Examples:
      kohya-plan make plan.toml --dry-run
      kohya-plan make plan.toml --dry-run --shell powershell
      kohya-plan make plan.toml
      kohya-plan make plan.toml --slurm      # and job.sbatch, for `kohya-plan submit`
    """
    from kohya_plan import display, rundir
    from kohya_plan.planning import (
        SD_SCRIPTS_FILES,
        check_plan,
        dry_run_json,
        make_run,
        planned_run_dir,
        render_run,
        shell_command,
    )

    report = check_plan(plan_path, overrides)
    report.raise_if_blocked()
    if dry_run:
        rendered = render_run(report, planned_run_dir(report), slurm=slurm)
        if as_json:
            display.raw(json.dumps(dry_run_json(rendered), indent=2, ensure_ascii=False) + "\n")
            return
        for name in (*SD_SCRIPTS_FILES, *(n for n in [rundir.JOB_SBATCH] if n in rendered.files)):
            display.plain(f"--- {name} ---")
            display.raw(rendered.files[name])
        display.plain(f"--- command ({shell}) ---")
        display.plain(shell_command(rendered.launch, shell))
        return
    rendered = make_run(report, slurm=slurm)
    run_dir = rendered.run_dir
    if as_json:
        payload = {"run_dir": str(run_dir), **dry_run_json(rendered)}
        display.raw(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return
    display.made(str(run_dir), shell_command(rendered.launch, shell), shell)
    if rundir.JOB_SBATCH in rendered.files:
        display.plain(f"SLURM job script: {run_dir / rundir.JOB_SBATCH}")
        display.plain(f"Submit it with: kohya-plan submit {run_dir}")


@cli.command(name="import")
@click.argument("source", metavar="SOURCE")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The new plan (default: <source>.plan.toml beside it; ./plan.toml for -).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "kohya_ss", "sd-scripts", "command", "sd-trainer", "lets"]),
    default="auto",
    show_default=True,
    help="The source's format (auto: detected).",
)
@click.option(
    "--dataset-config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="With an sd-scripts config TOML: its --dataset_config file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the mapping report as JSON.")
def import_command(
    source: str, output: Path | None, fmt: str, dataset_config: Path | None, as_json: bool
) -> None:
    """Turn another tool's config into a NEW commented plan, then check it.

    SOURCE is a kohya_ss GUI JSON, an sd-scripts config or dataset TOML, an SD-Trainer or
    LoRA_Easy_Training_Scripts TOML, a file with a training command, or - to paste a
    command (POSIX, or PowerShell/cmd with ` or ^ line continuations) on stdin.
    Prints what became of every key. Never overwrites; exit status 2 when the source
    cannot be imported (nothing is written), else 0 (check's findings are shown).

    \b
    Examples:
      kohya-plan import my_lora.json
      kohya-plan import config.toml --dataset-config dataset.toml -o plan.toml
      kohya-plan import - -o plan.toml < command.txt
      kohya-plan import settings.toml --format lets --json
    """
    import sys

    from kohya_plan import display
    from kohya_plan.workflows.importers import import_source

    stdin_text = sys.stdin.read() if source == "-" else None
    try:
        done = import_source(
            source, output=output, fmt=fmt, dataset_config=dataset_config, stdin_text=stdin_text
        )
    except PlanError as exc:
        if as_json:
            errors = [f.to_json() for f in exc.findings]
            display.raw(json.dumps({"ok": False, "errors": errors}, ensure_ascii=False) + "\n")
        else:
            display.problems(exc.findings, title=f"Cannot import {source}")
        raise SystemExit(2) from None
    if as_json:
        display.raw(json.dumps(done.to_json(), indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        display.import_report(done)


@cli.command()
@click.argument("target", metavar="PLAN|RUN_DIR", type=click.Path(path_type=Path))
@set_option
@click.option("--plain", is_flag=True, help="Plain progress lines instead of a live bar.")
@click.option("--quiet", "-q", is_flag=True, help="Show only the summary at the end.")
@click.option("--overwrite", is_flag=True, help="Allow replacing LoRA files of the same name.")
@click.option("--resume", is_flag=True, help="Continue from the newest saved state.")
@click.option(
    "--resume-from",
    type=click.Path(path_type=Path, file_okay=False),
    help="Continue from this saved state folder (<name>-…-state).",
)
@click.option(
    "--keep-going-on-nan", is_flag=True, help="Do not stop the run when avr_loss becomes NaN."
)
@click.option(
    "--grace",
    type=Seconds(0, 3600),
    default=30.0,
    show_default=True,
    help="How long a graceful stop waits for the trainer to save (Ctrl-C, `stop`): seconds, "
    "or 90s, 5m; at most 1 h. Then SIGTERM, then SIGKILL.",
)
@click.option(
    "--stall-timeout",
    type=Seconds(1, 7 * 86400, off=True),
    default="30m",
    show_default=True,
    help="Warn when the trainer prints nothing for this long (sd-scripts prints every step): "
    "30m, 2h, 600; 0 turns it off.",
)
@click.option(
    "--stop-on-stall",
    is_flag=True,
    help="Also stop the run (gracefully) at a stall; the summary names it.",
)
@click.option("--board", "with_board", is_flag=True, help="Start TensorBoard alongside the run.")
@click.option(
    "--trust-edited",
    is_flag=True,
    help="Run a RUN_DIR whose launch.json was changed after `make` (refused otherwise).",
)
def launch(
    target: Path,
    overrides: tuple[str, ...],
    plain: bool,
    quiet: bool,
    overwrite: bool,
    resume: bool,
    resume_from: Path | None,
    keep_going_on_nan: bool,
    grace: float,
    stall_timeout: float,
    stop_on_stall: bool,
    with_board: bool,
    trust_edited: bool,
) -> None:
    """Run a plan (a new run folder is made first) or a run folder made by `make`.

    Runs exactly the command `make --dry-run` shows, shows progress, stops cleanly on
    Ctrl-C (twice: at once) or `kohya-plan stop RUN_DIR` from another terminal, and ends
    with a summary (also in summary.json). One launch per output: a second launch into the
    same output.dir + output.name (or of the same run folder) is refused while one runs.

    A closed terminal (SIGHUP) or a closed output (`| head`) does NOT stop the training:
    kohya-plan stops showing progress and goes on supervising; train.log, kohya-plan.log and
    summary.json are written as always (`kohya-plan summary RUN_DIR` shows it; `kohya-plan
    stop RUN_DIR` stops it). If kohya-plan itself is killed, its guardian process stops the
    trainer the graceful way; `summary` then says "interrupted".

    Exit status: 0 when the run succeeded, 3 when the training failed, 130 when stopped.

    \b
    Examples:
      kohya-plan launch plan.toml
      kohya-plan launch runs/xunxian-20261126-120000 --plain
      kohya-plan launch plan.toml --resume
      kohya-plan launch plan.toml --stall-timeout 1h --stop-on-stall
    """
    from kohya_plan import display
    from kohya_plan.workflows.launch import LaunchOptions, exit_code, is_interactive, prepare, run

    options = LaunchOptions(
        overwrite=overwrite,
        resume=resume,
        resume_from=resume_from,
        keep_going_on_nan=keep_going_on_nan,
        grace_s=grace,
        stall_timeout_s=stall_timeout,
        stop_on_stall=stop_on_stall,
        trust_edited=trust_edited,
    )
    with display.decode_progress(not quiet) as progress:
        prepared = prepare(target, overrides, options, progress=progress)
    if prepared.edited_launch:
        import shlex

        display.warning(
            f"{prepared.run_dir}'s launch.json was changed after `make`; running it AS EDITED "
            f"(--trust-edited): {shlex.join(prepared.argv)} (in {prepared.cwd})"
        )
    mode = "quiet" if quiet else "plain" if plain or not is_interactive() else "rich"
    if mode != "quiet":
        with _closed_output_is_fine():
            display.plain(f"Run folder: {prepared.run_dir} (log: train.log)")
    board = None
    if with_board:
        from kohya_plan.workflows.board import start_board

        board = start_board([prepared.run_dir], require_logs=False)
        with _closed_output_is_fine():
            display.plain(
                f"TensorBoard: {board.url} (shows the run once sd-scripts starts logging)"
            )
    try:
        summary = run(prepared, options, lambda: display.run_view(mode))
    finally:
        if board is not None:
            board.stop()
    with _closed_output_is_fine():
        display.run_summary(summary, str(prepared.run_dir))
    raise SystemExit(exit_code(summary))


@contextlib.contextmanager
def _closed_output_is_fine() -> Iterator[None]:
    """A closed stdout (`| head`, a dead `tee`, a closed terminal) is no reason to fail a run:
    what was to be printed is in the run folder; stdout goes to the null device from then on."""
    try:
        yield
    except OSError:
        from kohya_plan.workflows.launch import silence_broken_output

        silence_broken_output()
    except SystemExit as exc:
        if exc.code != 1:
            raise
        # rich answers a broken pipe with SystemExit(1), stdout already on the null device.


@cli.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print summary.json's content.")
def summary(run_dir: Path, as_json: bool) -> None:
    """Show a launched run's summary again, from train.log and the TensorBoard events.

    A run submitted to SLURM: from its job's log and the scheduler's record (sacct).

    \b
    Examples:
      kohya-plan summary runs/xunxian-20261126-120000
      kohya-plan summary runs/xunxian-20261126-120000 --json
    """
    from kohya_plan import display
    from kohya_plan.workflows.slurm import summary_of

    try:
        result = summary_of(run_dir)
    except KohyaPlanError as exc:
        if not as_json:
            raise
        # --json always prints JSON: scripts read stdout, the error included.
        error = {"ok": False, "run_dir": str(run_dir), "error": str(exc)}
        display.raw(json.dumps(error, indent=2, ensure_ascii=False) + "\n")
        raise SystemExit(exc.exit_code) from None
    if as_json:
        display.raw(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        display.run_summary(result, str(run_dir))


@cli.command()
@click.argument("target", metavar="PLAN|RUN_DIR", type=click.Path(path_type=Path))
@set_option
@click.option("--overwrite", is_flag=True, help="Allow replacing LoRA files of the same name.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
def submit(target: Path, overrides: tuple[str, ...], overwrite: bool, as_json: bool) -> None:
    """Run a plan (or a run folder `make --slurm` made) as a SLURM job, with sbatch.

    A plan is made into a new run folder with job.sbatch first ([slurm] for the resources,
    one task per machine; without it, one machine with launch.num_processes GPUs). The job
    id goes into the run folder's slurm.json; the job's output into slurm-<job id>.out there.

    \b
    Examples:
      kohya-plan submit plan.toml
      kohya-plan submit runs/xunxian-20261126-120000
      kohya-plan status runs/xunxian-20261126-120000
    """
    from kohya_plan import display
    from kohya_plan.workflows.slurm import submit as run_submit

    done = run_submit(target, overrides, overwrite=overwrite)
    if as_json:
        payload = {"run_dir": str(done.run_dir), "job_id": done.job_id, "log": str(done.log)}
        display.raw(json.dumps(payload, indent=2) + "\n")
    else:
        display.submitted(done)


@cli.command()
@click.argument(
    "target", metavar="RUN_DIR|SWEEP_DIR", type=click.Path(path_type=Path, file_okay=False)
)
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status(target: Path, as_json: bool) -> None:
    """Where a run stands: not launched, pending, running (step, epoch, loss), done or failed.

    For a SLURM run it asks the scheduler (squeue while it waits or runs, sacct once it
    ended) and reads the job's log; for a sweep folder, every point. Exit status 0 (also
    for a failed run: see its cause), 2 when TARGET is not a run or sweep folder.

    \b
    Examples:
      kohya-plan status runs/xunxian-20261126-120000
      kohya-plan status runs/xunxian-sweep-20261126-120000 --json
    """
    from kohya_plan import display
    from kohya_plan.workflows.slurm import run_status
    from kohya_plan.workflows.sweep import is_sweep_dir, sweep_status

    if is_sweep_dir(target):
        rows = sweep_status(target)
        if as_json:
            payload = [{"point": label, **s.to_json()} for label, s in rows]
            display.raw(json.dumps(payload, indent=2, default=str) + "\n")
        else:
            display.statuses(rows)
        return
    result = run_status(target)
    if as_json:
        display.raw(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    else:
        display.run_status(result)


@cli.command(name="stop")
@click.argument(
    "target", metavar="RUN_DIR|SWEEP_DIR", type=click.Path(path_type=Path, file_okay=False)
)
@click.option("--now", is_flag=True, help="Kill the trainer at once (as a second Ctrl-C).")
@click.option("--no-wait", is_flag=True, help="Only ask; do not wait for the run to end.")
@click.option(
    "--timeout",
    type=Seconds(1, 86400),
    help="How long to wait for the run to end (default: its --grace + 30 s; SLURM: 2 min).",
)
def stop(target: Path, now: bool, no_wait: bool, timeout: float | None) -> None:
    """Stop a running run from another terminal, the same graceful way as Ctrl-C.

    A run launched here: kohya-plan (the `launch` that runs it) asks the trainer to stop —
    SIGINT to its process group, so sd-scripts saves — waits --grace, then terminates and
    kills what is left, and writes the summary; if that kohya-plan is gone, its guardian
    stops the trainer. A run submitted to SLURM: scancel (the trainer gets SIGTERM; --now:
    SIGKILL). A sweep folder: its SLURM job array is cancelled. Waits until the run has
    ended and prints its outcome.
    Exit status: 0 when it ended (or, with --no-wait, was asked), 2 when nothing runs in
    RUN_DIR, 1 when it had not ended within --timeout.

    \b
    Examples:
      kohya-plan stop runs/xunxian-20261126-120000
      kohya-plan stop runs/xunxian-20261126-120000 --now
      kohya-plan stop runs/xunxian-sweep-20261126-120000     # a sweep's SLURM job array
    """
    from kohya_plan import display
    from kohya_plan.workflows.stop import stop_run
    from kohya_plan.workflows.sweep import is_sweep_dir, stop_sweep

    if is_sweep_dir(target):
        display.stopped(stop_sweep(target), str(target))
        return
    done = stop_run(target, now=now, wait=not no_wait, timeout_s=timeout)
    display.plain(f"{done.action}")
    if done.ended is None:
        return
    if not done.ended:
        display.error(
            f"{target} is still running: the trainer may still be saving — wait, or "
            f"`kohya-plan stop {target} --now` kills it"
        )
        raise SystemExit(1)
    if done.stopper == "slurm":  # the job may have written nothing yet: its state
        from kohya_plan.workflows.slurm import run_status

        display.run_status(run_status(target))
        return
    from kohya_plan.workflows.results import summary_from_disk

    display.run_summary(summary_from_disk(target), str(target))


@cli.command()
@click.argument("target", metavar="PLAN|SWEEP_DIR", type=click.Path(path_type=Path))
@click.option(
    "--grid",
    "grid",
    multiple=True,
    metavar="KEY=V1,V2",
    help="A plan key and its values (repeatable; else the plan's [sweep] grid).",
)
@set_option
@click.option("--slurm", is_flag=True, help="Submit the points as one SLURM job array.")
@click.option(
    "--max-parallel", type=click.IntRange(min=1), help="With --slurm: points running at once."
)
@click.option("--no-run", is_flag=True, help="Only make the folders (and the job array).")
@click.option("--retry-failed", is_flag=True, help="Resuming: run failed points again too.")
@click.option("--plain", is_flag=True, help="Plain progress lines instead of a live bar.")
@click.option("--quiet", "-q", is_flag=True, help="Show only each point's summary.")
def sweep(
    target: Path,
    grid: tuple[str, ...],
    overrides: tuple[str, ...],
    slurm: bool,
    max_parallel: int | None,
    no_run: bool,
    retry_failed: bool,
    plain: bool,
    quiet: bool,
) -> None:
    """One run per combination of values: make them all, then run them one by one or on SLURM.

    Every point is PLAN with its values set and named <name>-<values> (so its LoRA files
    are its own); all points are checked before anything is written. They go into a new
    sweep folder, and run here one after another (a failed point does not stop the
    others; Ctrl-C stops the queue, `kohya-plan sweep SWEEP_DIR` goes on where it
    stopped) or, with --slurm, as one job array. `kohya-plan compare SWEEP_DIR` then
    puts them side by side. Exit status: 0 when every point succeeded, 3 when one failed,
    130 when stopped.

    \b
    Examples:
      kohya-plan sweep plan.toml --grid optimizer.unet_lr=1e-4,5e-5 --grid network.dim=16,32
      kohya-plan sweep plan.toml --slurm --max-parallel 2     # the plan's [sweep] grid
      kohya-plan sweep runs/xunxian-sweep-20261126-120000     # go on where it stopped
    """
    from kohya_plan import display, rundir
    from kohya_plan.workflows.launch import is_interactive
    from kohya_plan.workflows.sweep import (
        is_sweep_dir,
        load_sweep,
        make_sweep,
        run_queue,
        submit_sweep,
    )

    if target.is_dir() and is_sweep_dir(target):
        if grid or overrides or slurm or max_parallel is not None:
            msg = (
                f"{target} is a made sweep: resuming takes no --grid, --set, --slurm or "
                "--max-parallel (sweep its plan again for a new one)"
            )
            raise click.UsageError(msg)
        made = load_sweep(target)
    else:
        if max_parallel is not None and not slurm:
            msg_0 = "--max-parallel goes with --slurm"
            raise click.UsageError(msg_0)
        made = make_sweep(target, grid, overrides, slurm=slurm, max_parallel=max_parallel)
        display.sweep_made(made)
        if slurm:
            if no_run:
                display.plain(f"Submit it with: sbatch {made.path / rundir.JOB_SBATCH}")
                return
            job = submit_sweep(made)
            display.plain(f"Submitted job array {job}: kohya-plan status {made.path}")
            return
        if no_run:
            display.plain(f"Run it with: kohya-plan sweep {made.path}")
            return
    mode = "quiet" if quiet else "plain" if plain or not is_interactive() else "rich"
    result = run_queue(
        made,
        lambda: display.run_view(mode),
        retry_failed=retry_failed,
        on_point=display.queue_point,
        on_summary=lambda item, summary: display.run_summary(summary, str(item.run_dir)),
    )
    display.queue_result(result, str(made.path))
    raise SystemExit(result.exit_code)


@cli.command()
@click.argument(
    "targets",
    nargs=-1,
    required=True,
    metavar="RUN_DIR...|SWEEP_DIR",
    type=click.Path(path_type=Path, file_okay=False),
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write it (default: the sweep folder, else the runs' folder).",
)
def compare(targets: tuple[Path, ...], output: Path | None) -> None:
    """Write compare.html: the runs' samples side by side (same prompt and seed), by epoch.

    Also the loss per epoch of every run in one chart, the settings in which the runs
    differ as their labels, each LoRA file's size, and with two differing settings the
    last epoch as the X/Y grid of the tutorial's last step (T30). One self-contained page.

    \b
    Examples:
      kohya-plan compare runs/xunxian-sweep-20261126-120000
      kohya-plan compare runs/a-20261126-120000 runs/b-20261126-130000 -o compare.html
    """
    from kohya_plan import display
    from kohya_plan.workflows.compare import write_compare

    display.plain(f"Wrote {write_compare(list(targets), output=output)}")


@cli.command(name="lr-find")
@plan_argument
@set_option
@click.option(
    "--with",
    "searcher",
    type=click.Choice(["dadapt", "prodigy"]),
    default="dadapt",
    show_default=True,
    help="Adaptive optimizer for the search: DAdaptAdam or Prodigy.",
)
@click.option(
    "--steps", type=click.IntRange(2, 100_000), help="Step budget (default: from the data)."
)
@click.option(
    "--optimizer",
    "target",
    type=click.Choice(["adamw8bit", "lion"]),
    default="adamw8bit",
    show_default=True,
    help="Optimizer of the new plan: AdamW8bit at the found LR (T20), Lion at a third (T21).",
)
@click.option(
    "--te-ratio",
    type=FiniteFloatRange(0.1, 0.5),
    default=0.5,
    show_default=True,
    help="Text-encoder LR as a fraction of the U-Net LR (T17: 1/10 to 1/2).",
)
@click.option("--plain", is_flag=True, help="Plain progress lines instead of a live bar.")
@click.option("--quiet", "-q", is_flag=True, help="Show only the result.")
def lr_find(
    plan_path: Path,
    overrides: tuple[str, ...],
    searcher: str,
    steps: int | None,
    target: str,
    te_ratio: float,
    plain: bool,
    quiet: bool,
) -> None:
    """Find a learning rate the tutorial's way (T19-T21) and write a new plan with it.

    Runs PLAN briefly with DAdaptAdam (or Prodigy) at LR 1.0, reads TensorBoard's
    lr/d*lr/unet curve, finds where it goes flat, and writes PLAN's sibling
    <plan>.lr-<value>.toml (never overwriting) with AdamW8bit at that LR and the text
    encoder at --te-ratio of it. The chart is shown and saved as lr-find.png.

    \b
    Examples:
      kohya-plan lr-find plan.toml
      kohya-plan lr-find plan.toml --with prodigy --steps 300
      kohya-plan lr-find plan.toml --optimizer lion --te-ratio 0.2
    """
    from kohya_plan import display
    from kohya_plan.workflows.launch import LaunchOptions, is_interactive
    from kohya_plan.workflows.lrfind.run import lr_find as find

    mode = "quiet" if quiet else "plain" if plain or not is_interactive() else "rich"
    result = find(
        plan_path,
        overrides,
        searcher=searcher,
        steps=steps,
        te_ratio=te_ratio,
        target=target,
        options=LaunchOptions(),
        view_factory=lambda: display.run_view(mode),
    )
    display.lr_find_result(result)


@cli.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path, file_okay=False))
def report(run_dir: Path) -> None:
    """Write RUN_DIR/report.html: plan, command, dataset, loss and LR charts, samples by epoch.

    One self-contained page (images embedded) to pick the best epoch by looking (T24, T30).
    `launch` writes it at the end of every run; this writes it again.

    \b
    Examples:
      kohya-plan report runs/xunxian-20261126-120000
    """
    from kohya_plan import display
    from kohya_plan.report import write_report
    from kohya_plan.rundir import RunDir

    display.plain(f"Wrote {write_report(RunDir(run_dir).require_made().path)}")


@cli.command(name="board")
@click.argument("run_dirs", nargs=-1, metavar="[RUN_DIR]...", type=click.Path(path_type=Path))
@click.option("--open", "open_it", is_flag=True, help="Open it in the web browser.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: a free one).")
def board_command(run_dirs: tuple[Path, ...], open_it: bool, host: str, port: int | None) -> None:
    """Show runs' TensorBoard logs (loss, learning rates) until Ctrl-C.

    RUN_DIR may be a run folder, its logs/ folder, or a folder of runs (default: the current
    folder).

    \b
    Examples:
      kohya-plan board runs/xunxian-20261126-120000
      kohya-plan board runs --open
    """
    from kohya_plan import display
    from kohya_plan.workflows.board import (
        find_runs,
        open_browser,
        serve_forever_until_interrupt,
        start_board,
    )

    board = start_board(find_runs(list(run_dirs) or [Path()]), host=host, port=port)
    for warning in board.warnings:
        display.plain(f"warning: {warning}")
    display.plain(f"TensorBoard: {board.url}  (Ctrl-C to stop)")
    if open_it and not open_browser(board.url):
        display.plain("(no web browser could be opened: open the address yourself)")
    serve_forever_until_interrupt(board)


@cli.command(name="setup")
@click.option(
    "--dir",
    "home_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to install (default: $KOHYA_PLAN_HOME, else the user data folder).",
)
@click.option(
    "--from",
    "source",
    metavar="URL|PATH",
    default=None,
    help="Where to get sd-scripts: a git URL, a mirror or a checkout (default: GitHub).",
)
@click.option("--torch", "torch_version", metavar="VERSION", help="torch release to install.")
@click.option("--cuda", "device", flag_value="cuda", help="A CUDA build of torch.")
@click.option("--cpu", "device", flag_value="cpu", help="PyTorch's CPU-only build (smaller).")
@click.option("--torch-index", metavar="URL", help="Package index for torch and torchvision.")
@click.option("--python", "base_python", metavar="PYTHON", help="Interpreter for the venv.")
@click.option(
    "--installer",
    type=click.Choice(["auto", "uv", "pip"]),
    default="auto",
    show_default=True,
    help="uv when it is on PATH, else pip.",
)
@click.option("--find-links", multiple=True, metavar="DIR|URL", help="Also look for packages here.")
@click.option("--no-index", is_flag=True, help="Use only --find-links (offline installs).")
@click.option(
    "--sd-scripts",
    "sd_scripts",
    type=click.Path(path_type=Path, file_okay=False),
    help="Put (or find) the checkout here instead (e.g. vendor/sd-scripts).",
)
@click.option(
    "--venv",
    type=click.Path(path_type=Path, file_okay=False),
    help="Put (or find) the virtual environment here instead (e.g. .venv-sd).",
)
@click.option(
    "--commit", metavar="SHA", help="Another sd-scripts commit than the one kohya-plan knows."
)
@click.option("--check", "check_only", is_flag=True, help="Only report what is missing.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option("--plain", is_flag=True, help="Plain lines instead of a live status.")
def setup_command(
    home_dir: Path | None,
    source: str | None,
    torch_version: str | None,
    device: str | None,
    torch_index: str | None,
    base_python: str | None,
    installer: str,
    find_links: tuple[str, ...],
    no_index: bool,
    sd_scripts: Path | None,
    venv: Path | None,
    commit: str | None,
    check_only: bool,
    as_json: bool,
    plain: bool,
) -> None:
    """Install sd-scripts and its own Python environment (torch, its requirements).

    A checkout of kohya-ss/sd-scripts at the commit kohya-plan's option checks were made
    for, and a virtual environment beside it, in the kohya-plan home (`--dir`, else
    $KOHYA_PLAN_HOME, else the user data folder). Plans find it by themselves. Running it
    again checks every step and repairs what is missing; interrupting it is safe.
    Exit status: 0 when complete, 1 when a step failed (or, with --check, is missing).

    \b
    Examples:
      kohya-plan setup
      kohya-plan setup --cpu                      # PyTorch's small CPU-only build
      kohya-plan setup --torch 2.9.1 --cuda
      kohya-plan setup --from /mirrors/sd-scripts.git --dir /data/kohya
      kohya-plan setup --check
    """
    from kohya_plan import display
    from kohya_plan.inputs.installation import home
    from kohya_plan.setup.choices import GITHUB_URL
    from kohya_plan.setup.install import SetupOptions, setup

    options = SetupOptions(
        home=home_dir,
        sd_scripts=sd_scripts,
        venv=venv,
        source=source or GITHUB_URL,
        commit=commit,
        torch=torch_version,
        device=device or "auto",  # type: ignore[arg-type]
        torch_index=torch_index,
        python=base_python,
        installer=installer,  # type: ignore[arg-type]
        find_links=find_links,
        no_index=no_index,
    )
    view = None if as_json else display.setup_view(plain or not _interactive())
    report = setup(options, view, check_only=check_only)
    if as_json:
        display.raw(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        notes = []
        if sd_scripts is not None or venv is not None:
            notes.append(
                f"plans use it with launch.sd_scripts = {str(report.layout.sd_scripts)!r} "
                f"and launch.python = {str(report.layout.python)!r}"
            )
        elif home_dir is not None and home(home_dir) != home():
            notes.append(f"plans find it with KOHYA_PLAN_HOME={report.layout.home}")
        display.setup_report(report, check_only=check_only, notes=notes)
    if not report.complete:
        raise SystemExit(1)


@cli.command()
@click.argument(
    "plan_path", metavar="[PLAN]", required=False, type=click.Path(path_type=Path, dir_okay=False)
)
@click.option("--python", metavar="PYTHON", help="Examine this interpreter instead.")
@click.option(
    "--sd-scripts",
    "sd_scripts",
    type=click.Path(path_type=Path, file_okay=False),
    help="Examine this sd-scripts checkout instead.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings (and raw facts) as JSON.")
def doctor(
    plan_path: Path | None, python: str | None, sd_scripts: Path | None, as_json: bool
) -> None:
    """Check the training environment: what would fail mid-run, each with its exact fix.

    Runs one probe in the trainer's Python: versions of torch (CUDA build vs driver),
    accelerate, transformers, diffusers, bitsandbytes; the GPUs and their bf16/fp8 support;
    the sd-scripts commit; an accelerate default config that would change a launch; the
    tokenizer cache, Hugging Face login and free disk. With PLAN, also what that plan needs
    (its optimizer's package, xformers, precision, GPU count).
    Exit status: 0 when nothing blocks training, 1 when something does.

    \b
    Examples:
      kohya-plan doctor
      kohya-plan doctor my-lora/plan.toml
      kohya-plan doctor --python ~/venvs/sd/bin/python --json
    """
    from kohya_plan import display
    from kohya_plan.setup.doctor import evaluate, gather, report_json, worst

    if plan_path is not None and not plan_path.is_file():
        from kohya_plan.errors import UsageError

        msg = f"{plan_path}: no such plan file — give a plan.toml (or leave PLAN out)"
        raise UsageError(msg)
    facts = gather(plan_path, sd_scripts=sd_scripts, python=python)
    found = evaluate(facts)
    if as_json:
        display.raw(json.dumps(report_json(facts, found), indent=2, ensure_ascii=False) + "\n")
    else:
        display.diagnoses(found)
    if worst(found) == "error":
        raise SystemExit(1)


@cli.command()
@click.option(
    "--family",
    type=click.Choice(["sd15"]),
    default="sd15",
    show_default=True,
    help=(
        "Model family of the tiny model (sd15 only: the tiny SDXL and FLUX.1 models need "
        "11-15 GB of RAM and ~1 min to build; the test suite's e2e tests run them)."
    ),
)
@click.option("--keep", is_flag=True, help="Keep the run folder for inspection.")
@click.option("--python", metavar="PYTHON", help="Test this interpreter instead.")
@click.option(
    "--sd-scripts",
    "sd_scripts",
    type=click.Path(path_type=Path, file_okay=False),
    help="Test this sd-scripts checkout instead.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON at the end.")
def selftest(
    family: str, keep: bool, python: str | None, sd_scripts: Path | None, as_json: bool
) -> None:
    """Prove the installation: train 4 real steps on a tiny random model, check the results.

    Builds (once, cached in the kohya-plan home) a CLIP tokenizer and a tiny random model,
    makes a 4-image data set, runs 4 optimization steps through `kohya-plan launch`, then
    checks the LoRA file, summary.json and the TensorBoard loss, and prints s/step and peak
    memory. A few minutes on a CPU; the first run also builds the model (~8 GiB RAM).
    Exit status: 0 when every check passed, 1 when not.

    \b
    Examples:
      kohya-plan selftest
      kohya-plan selftest --keep
    """
    from kohya_plan import display
    from kohya_plan.setup.selftest import SelftestOptions
    from kohya_plan.setup.selftest import selftest as run_selftest

    options = SelftestOptions(family=family, keep=keep, sd_scripts=sd_scripts, python=python)
    result = run_selftest(
        options,
        view_factory=lambda: display.run_view("plain"),
        on_phase=display.selftest_phase,
        on_line=display.selftest_line,
    )
    if as_json:
        display.raw(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        display.selftest_result(result)
    if not result.ok:
        raise SystemExit(1)


def _interactive() -> bool:
    import sys

    return sys.stdout.isatty()


def main() -> None:
    """Entry point of the `kohya-plan` script."""
    cli(prog_name="kohya-plan")
