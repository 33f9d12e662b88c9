"""The library behind `check` and `make`: load a plan, learn its data, check, render, write."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_plan import __version__, rundir
from kohya_plan.checks import run_checks
from kohya_plan.checks.report import CheckReport
from kohya_plan.errors import LaunchError, PlanError
from kohya_plan.inputs.facts import Facts
from kohya_plan.inputs.inspect import DeepMode, gather_facts
from kohya_plan.inputs.paths import unusable_paths
from kohya_plan.inputs.trainer import locate_python, locate_sd_scripts
from kohya_plan.loading import apply_overrides, partial_plan, read_toml, validate_plan
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
from kohya_plan.render.toml_text import comment_text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import FolderFacts, ModelFileFacts, ModelKind, ParentFacts
    from kohya_plan.plan import Plan
    from kohya_plan.plan.slurm import SlurmSection


def check_plan(
    plan_path: Path,
    overrides: Iterable[str] = (),
    *,
    hardware: bool = False,
    vram_gib: float | None = None,
    deep: DeepMode | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Load, validate and check a plan file against its data (and this machine's hardware, or
    a GPU of `vram_gib` GiB: `check --vram`).

    ``deep``: also decode every image ("full", `check --deep`) or what changed since the last
    deep check ("cached", `launch`); ``progress(done, total)`` follows the decoding.
    """
    plan_path = plan_path.expanduser().absolute()
    data = apply_overrides(read_toml(plan_path), overrides)
    try:
        plan = validate_plan(data, plan_path.resolve().parent)
    except PlanError as exc:
        # Every problem at once: what the data on disk shows, as far as the plan allows.
        raise PlanError([*exc.findings, *data_problems(data, plan_path)]) from None
    return check_validated(
        plan, plan_path, hardware=hardware, vram_gib=vram_gib, deep=deep, progress=progress
    )


def data_problems(data: Mapping[str, Any], plan_path: Path) -> list[Finding]:
    """The dataset's and the model's blocking errors for plan data that does not validate.

    Checked on the sections that do validate (`loading.partial_plan`): the dataset folders
    when [dataset] is valid, the base model when [model] is; waivers apply when [rules] is.
    """
    from kohya_plan.checks import dataset as dataset_checks
    from kohya_plan.checks import model as model_checks
    from kohya_plan.findings import blocking
    from kohya_plan.inputs import inspect

    partial = partial_plan(data, plan_path.resolve().parent)
    if partial is None:
        return []
    plan, broken = partial
    checks = []
    kind: ModelKind = "hub"
    ref = plan.model.base
    detected = problem = wrong = None
    if "model" not in broken:
        kind, ref = inspect.model_kind(plan, plan_path.parent)
        detected, problem = inspect.detect_model(kind, ref)
        if (wrong := inspect.not_a_model(kind, ref)) is not None:
            detected, problem = None, None
        checks.append(model_checks.check_model)
    folders: tuple[FolderFacts, ...] = ()
    parents: tuple[ParentFacts, ...] = ()
    if "dataset" not in broken:
        subsets, found = inspect.resolve_subsets(plan)
        folders = tuple(inspect.scan_subset(plan, s) for s in subsets)
        parents = tuple(found)
        checks += [dataset_checks.check_parents, dataset_checks.check_folders]
    facts = Facts(
        model_kind=kind,
        model_ref=ref,
        model_family_detected=detected,
        model_problem=problem,
        model_not_a_model=wrong,
        parents=parents,
        folders=folders,
    )
    return blocking(run_checks(plan, facts, checks))  # [rules] broken: its defaults, no waiver


def check_data(data: Mapping[str, Any], plan_path: Path) -> CheckReport:
    """Validate and check plan data that stands for `plan_path` (e.g. a derived plan)."""
    plan_path = plan_path.expanduser().absolute()
    return check_validated(validate_plan(data, plan_path.parent), plan_path)


def check_validated(
    plan: Plan,
    plan_path: Path,
    *,
    hardware: bool = False,
    vram_gib: float | None = None,
    deep: DeepMode | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Check a validated plan against its data on disk."""
    unusable = unusable_paths(plan, plan_path.parent)
    if unusable:
        raise PlanError(unusable)  # nothing can be read through these paths
    facts = gather_facts(
        plan,
        plan_path.parent,
        hardware=hardware,
        vram_gib=vram_gib,
        deep=deep,
        progress=progress,
    )
    return CheckReport(plan_path, plan, facts, run_checks(plan, facts))


# --- rendering and writing ------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """The model paths and tokenizer folder sd-scripts gets (local once resolved)."""

    model: str
    tokenizer_cache_dir: Path
    model_files: dict[str, str] = field(default_factory=dict)
    """The family's other model files by plan key (FLUX.1: ae, clip_l, t5xxl)."""


@dataclass(frozen=True)
class RenderedRun:
    """Every file of a run folder (name → text), the launch command, the inputs it uses."""

    run_dir: Path
    files: dict[str, str]
    launch: Launch
    inputs: Inputs


def _header(report: CheckReport, what: str) -> str:
    return (
        f"{what}, made by kohya-plan {__version__} from {comment_text(str(report.plan_path))}\n"
        f"for kohya-ss/sd-scripts {sd_scripts_commit()[:10]}. Do not edit: change the plan and "
        "run `kohya-plan make` again."
    )


def resolve_inputs(report: CheckReport, *, download: bool) -> Inputs:
    """Make the model files and the tokenizers local before sd-scripts starts.

    With `download`, Hub models (the base and the family's other files, FLUX.1's AE, CLIP-L and
    T5-XXL, from whatever repositories they come from) go into the Hugging Face cache and the
    tokenizers into `tokenizer_cache_dir` (so sd-scripts never fetches mid-run); every one is
    tried, and one error names all that could not be had (offline: everything missing at
    once). Without (a dry run), the cached path is used where there is one, else the
    reference, and nothing is written.
    """
    from kohya_plan.inputs import hub

    plan, facts = report.plan, report.facts
    tokenizers = plan.model.tokenizer_cache_dir or hub.default_tokenizer_cache()
    problems: list[str] = []

    def attempt(fetch: Callable[[], str], fallback: str) -> str:
        try:
            return fetch()
        except LaunchError as exc:
            problems.append(str(exc))
            return fallback

    model = attempt(lambda: _base_model(report, download=download), facts.model_ref)
    files = {
        f.key: attempt(partial(_model_file, f, plan, download=download), f.ref)
        for f in facts.model_files
    }
    if download:
        attempt(lambda: str(hub.resolve_tokenizers(plan.model.family, tokenizers)), "")
    if problems:
        raise LaunchError("\n".join(problems))
    return Inputs(model, tokenizers, files)


def _base_model(report: CheckReport, *, download: bool) -> str:
    from kohya_plan.inputs import hub

    plan, facts = report.plan, report.facts
    model = facts.model_ref
    if facts.model_kind == "hub":
        ref = hub.parse_model_ref(model)
        if download:
            return str(hub.resolve_model(ref, family=plan.model.family))
        if (cached := hub.cached_model(ref)) is not None:
            return str(cached)
    elif facts.model_kind == "file" and download:
        return str(hub.loadable_file(Path(model)))
    return model


def _model_file(found: ModelFileFacts, plan: Plan, *, download: bool) -> str:
    """One of the family's other files, as sd-scripts gets it (local once resolved)."""
    from kohya_plan.inputs import hub

    spec = next(s for s in plan.family.model_files if s.key == found.key)
    field_name = f"model.{found.key}"
    if found.kind == "hub":
        ref = hub.parse_model_ref(found.ref)
        if download:
            path = hub.resolve_model_file(
                ref, field=field_name, kind=spec.kind, what=spec.what, example=spec.example
            )
            return str(path)
        cached = hub.cached_model(ref)
        return str(cached) if cached is not None else found.ref
    if found.kind == "file" and download:
        return str(hub.loadable_file(Path(found.ref), field=field_name))
    return found.ref


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
            model_files=inputs.model_files,
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
            "model_files": rendered.inputs.model_files,
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
