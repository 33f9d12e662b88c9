"""setup, doctor and selftest: sd-scripts' installation and its health."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kohya_plan.cli.group import cli


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
