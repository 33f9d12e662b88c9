"""The library behind `check` and `make`: load a plan, learn its data, check, render, write."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_plan import __version__, rundir
from kohya_plan.checks import run_checks
from kohya_plan.checks.report import CheckReport
from kohya_plan.inputs.inspect import gather_facts
from kohya_plan.inputs.trainer import locate_python, locate_sd_scripts
from kohya_plan.loading import load_plan, validate_plan
from kohya_plan.options import sd_scripts_commit
from kohya_plan.render.command import (
    Launch,
    accelerate_config,
    build_launch,
    command_ps1,
    command_sh,
    posix_display,
    powershell_display,
)
from kohya_plan.render.config_toml import render_config_toml, render_prompts
from kohya_plan.render.dataset_toml import render_dataset_toml
from kohya_plan.render.plan_toml import dump_plan

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from kohya_plan.plan import Plan
    from kohya_plan.plan.slurm import SlurmSection


def check_plan(
    plan_path: Path, overrides: Iterable[str] = (), *, hardware: bool = False
) -> CheckReport:
    """Load, validate and check a plan file against its data (and this machine's hardware)."""
    plan_path = plan_path.expanduser().absolute()
    plan = load_plan(plan_path, overrides)
    return check_validated(plan, plan_path, hardware=hardware)


def check_data(data: Mapping[str, Any], plan_path: Path) -> CheckReport:
    """Validate and check plan data that stands for `plan_path` (e.g. a derived plan)."""
    plan_path = plan_path.expanduser().absolute()
    return check_validated(validate_plan(data, plan_path.parent), plan_path)


def check_validated(plan: Plan, plan_path: Path, *, hardware: bool = False) -> CheckReport:
    """Check a validated plan against its data on disk."""
    facts = gather_facts(plan, plan_path.parent, hardware=hardware)
    return CheckReport(plan_path, plan, facts, run_checks(plan, facts))


# --- rendering and writing ------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """The model path and tokenizer folder sd-scripts gets (local once resolved)."""

    model: str
    tokenizer_cache_dir: Path


@dataclass(frozen=True)
class RenderedRun:
    """Every file of a run folder (name → text), the launch command, the inputs it uses."""

    run_dir: Path
    files: dict[str, str]
    launch: Launch
    inputs: Inputs


def _header(report: CheckReport, what: str) -> str:
    return (
        f"{what}, made by kohya-plan {__version__} from {report.plan_path}\n"
        f"for kohya-ss/sd-scripts {sd_scripts_commit()[:10]}. Do not edit: change the plan and "
        "run `kohya-plan make` again."
    )


def resolve_inputs(report: CheckReport, *, download: bool) -> Inputs:
    """Make the base model and the CLIP tokenizer local before sd-scripts starts.

    With `download`, a Hub model goes into the Hugging Face cache and the tokenizer into
    `tokenizer_cache_dir` (so sd-scripts never fetches mid-run); without (a dry run), the
    cached path is used where there is one, else the repo id, and nothing is written.
    """
    from kohya_plan.inputs import hub

    plan, facts = report.plan, report.facts
    tokenizers = plan.model.tokenizer_cache_dir or hub.default_tokenizer_cache()
    model = facts.model_ref
    if facts.model_kind == "hub":
        ref = hub.parse_model_ref(model)
        if download:
            model = str(hub.resolve_model(ref, family=plan.model.family))
        elif (cached := hub.cached_model(ref)) is not None:
            model = str(cached)
    elif facts.model_kind == "file" and download:
        model = str(hub.loadable_file(Path(model)))
    if download:
        hub.resolve_tokenizers(plan.model.family, tokenizers)
    return Inputs(model, tokenizers)


@dataclass(frozen=True)
class Trainer:
    """The sd-scripts checkout and the interpreter a run will use (None: `accelerate` on PATH)."""

    sd_scripts: Path
    python: str | None

    def script(self, plan: Plan) -> Path:
        """The training script of the plan's model family."""
        return self.sd_scripts / plan.script_name


def locate_trainer(report: CheckReport) -> Trainer:
    """Where sd-scripts and its Python are for this plan (plan keys, environment, defaults)."""
    sd_scripts = report.facts.sd_scripts or locate_sd_scripts(report.plan)
    return Trainer(sd_scripts, locate_python(report.plan, report.plan_path.parent, sd_scripts))


def slurm_section(plan: Plan) -> SlurmSection:
    """The plan's [slurm], or one matching its [launch] (machines, processes per machine)."""
    from kohya_plan.plan.slurm import SlurmSection

    if plan.slurm is not None:
        return plan.slurm
    return SlurmSection(
        nodes=plan.launch.num_machines, gpus_per_node=plan.launch.processes_per_machine
    )


def job_script(report: CheckReport, launch: Launch, run_dir: Path) -> str:
    """job.sbatch for a run: the same launcher and script as `launch`, machines from SLURM."""
    from kohya_plan.render.sbatch import render_sbatch, without_machine_flags

    plan = report.plan
    return render_sbatch(
        slurm_section(plan),
        run_dir=run_dir,
        accelerate_prefix=launch.prefix,
        launcher_flags_without_machine_flags=without_machine_flags(launch.flags),
        script_args=launch.script_args,
        cwd=launch.cwd,
        env=launch.env,
        save_state=plan.training.save_state,
        output_dir=plan.output.dir,
        output_name=plan.output.name,
        job_name=plan.output.name,
        processes_per_node=plan.launch.processes_per_machine,
        main_process_port=plan.launch.main_process_port,
        header=[_header(report, "SLURM job script (`kohya-plan submit`)")],
    )


def render_run(
    report: CheckReport, run_dir: Path, inputs: Inputs | None = None, *, slurm: bool = False
) -> RenderedRun:
    """All files of a run folder, rendered for `run_dir` (pure apart from locating sd-scripts).

    With `slurm` (or a [slurm] section in the plan) also the SLURM job script.
    """
    plan, facts = report.plan, report.facts
    if inputs is None:
        inputs = resolve_inputs(report, download=False)
    files = rundir.RunDir(run_dir)
    trainer = locate_trainer(report)
    launch = build_launch(plan, python=trainer.python, sd_scripts=trainer.sd_scripts, files=files)
    subsets = [f.subset for f in facts.folders if f.exists]
    rendered = {
        rundir.PLAN: dump_plan(plan, _header(report, "The validated plan")),
        rundir.DATASET: render_dataset_toml(
            plan, subsets, _header(report, "sd-scripts dataset config (--dataset_config)")
        ),
        rundir.CONFIG: render_config_toml(
            plan,
            model=inputs.model,
            tokenizer_cache_dir=inputs.tokenizer_cache_dir,
            files=files,
            header=_header(report, "sd-scripts training config (--config_file)"),
        ),
        rundir.PROMPTS: render_prompts(plan, _header(report, "Sample prompts (--sample_prompts)")),
        rundir.COMMAND_SH: command_sh(launch),
        rundir.COMMAND_PS1: command_ps1(launch),
        rundir.ACCELERATE_CONFIG: accelerate_config(plan),
    }
    if slurm or plan.slurm is not None:
        rendered[rundir.JOB_SBATCH] = job_script(report, launch, files.path)
    return RenderedRun(files.path, rendered, launch, inputs)


SD_SCRIPTS_FILES = (rundir.DATASET, rundir.CONFIG, rundir.PROMPTS)
"""The files sd-scripts reads (what `make --dry-run` prints)."""


def shell_command(launch: Launch, shell: str) -> str:
    """The command line for display, in the chosen shell's quoting."""
    if shell == "powershell":
        return powershell_display(launch.argv)
    return posix_display(launch.argv)


def dry_run_json(rendered: RenderedRun) -> dict[str, Any]:
    """`make --dry-run --json`: the argv and the three sd-scripts files."""
    return {
        "argv": rendered.launch.argv,
        "cwd": str(rendered.launch.cwd),
        "run_dir": str(rendered.run_dir),
        "files": {k: rendered.files[k] for k in SD_SCRIPTS_FILES},
    }


def planned_run_dir(report: CheckReport) -> Path:
    """The folder `make` would create now (a dry run shows this name)."""
    runs = report.plan.runs_dir(report.plan_path.parent)
    return rundir.next_run_dir(runs, report.plan.output.name)


def check_record(report: CheckReport, rendered: RenderedRun) -> dict[str, Any]:
    """check.json: what `check` found when the run was made, and the inputs it resolved.

    The report and the summary read this instead of scanning, resolving and counting again.
    """
    return {
        "kohya_plan_version": __version__,
        **report.to_json(),
        "inputs": {
            "model": rendered.inputs.model,
            "tokenizer_cache_dir": str(rendered.inputs.tokenizer_cache_dir),
            "sd_scripts": str(rendered.launch.cwd),
            "argv0": rendered.launch.argv[0],
        },
    }


def launch_record(launch: Launch) -> dict[str, Any]:
    """launch.json: what `kohya-plan launch RUN_DIR` runs (argv exactly as shown)."""
    return {
        "kohya_plan_version": __version__,
        "argv": launch.argv,
        "cwd": str(launch.cwd),
        "env": launch.env,
    }


def make_run(report: CheckReport, *, slurm: bool = False) -> RenderedRun:
    """Create a NEW run folder (never reusing one) and write every file into it."""
    inputs = resolve_inputs(report, download=True)  # before any folder: errors leave nothing
    source = report.plan_path.read_bytes()
    runs = report.plan.runs_dir(report.plan_path.parent)
    with rundir.creating(runs, report.plan.output.name) as run:
        rendered = render_run(report, run.path, inputs, slurm=slurm)
        rundir.fill(
            run,
            rendered.files,
            source=source,
            check=check_record(report, rendered),
            launch=launch_record(rendered.launch),
        )
    return rendered
