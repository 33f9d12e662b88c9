"""Commands that write or read a plan: init, templates, rules, check, make, import."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kohya_plan.cli.group import cli, plan_argument, set_option
from kohya_plan.errors import PlanError


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
