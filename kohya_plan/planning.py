"""The library behind `check` and `make`: load a plan, learn its data, check, render, write."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_plan import __version__, scan
from kohya_plan.buckets import BucketError
from kohya_plan.checks import Finding, blocking, lora_file_bytes, lora_parameters, run_checks
from kohya_plan.errors import PlanError, Problem
from kohya_plan.facts import Facts, FolderFacts, ModelKind, ParentFacts, StepFacts
from kohya_plan.loading import load_plan, validate_plan
from kohya_plan.options import sd_scripts_commit
from kohya_plan.render.command import (
    Launch,
    build_launch,
    command_ps1,
    command_sh,
    posix_display,
    powershell_display,
)
from kohya_plan.render.config_toml import RunFiles, render_config_toml, render_prompts
from kohya_plan.render.dataset_toml import ResolvedSubset, render_dataset_toml
from kohya_plan.render.plan_toml import dump_plan
from kohya_plan.steps import DatasetSpec, SubsetImages, batches_per_epoch, total_steps

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from kohya_plan.hardware import Hardware
    from kohya_plan.plan import Plan

_MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_SUBSET_OVERRIDES = (
    "caption_extension",
    "keep_tokens",
    "shuffle_caption",
    "flip_aug",
    "color_aug",
    "random_crop",
    "caption_prefix",
    "caption_suffix",
)


@dataclass(frozen=True)
class CheckReport:
    """A validated plan, what was found on disk, and every finding."""

    plan_path: Path
    plan: Plan
    facts: Facts
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        """No errors that are not waived."""
        return not blocking(self.findings)

    @property
    def lora_parameters(self) -> int:
        return lora_parameters(self.plan)

    @property
    def lora_file_bytes(self) -> int:
        return lora_file_bytes(self.plan)

    def raise_if_blocked(self) -> None:
        """Stop `make`/`launch` with every blocking error."""
        errors = blocking(self.findings)
        if errors:
            raise PlanError([Problem(f.field, f.message, f.fix, f.id) for f in errors])

    def next_run_dir(self) -> Path:
        """The folder `make` would create now (a dry run shows this name)."""
        return next_run_dir(self.plan.runs_dir(self.plan_path.parent), self.plan.output.name)

    def to_json(self) -> dict[str, Any]:
        """The `check --json` document."""
        steps = self.facts.steps
        return {
            "ok": self.ok,
            "plan": str(self.plan_path),
            "errors": [_finding_json(f) for f in self.findings if f.severity == "error"],
            "advice": [_finding_json(f) for f in self.findings if f.severity == "advice"],
            "steps": None
            if steps is None
            else {
                "batches_per_epoch": steps.batches_per_epoch,
                "steps_per_epoch": steps.steps_per_epoch,
                "epochs": steps.epochs,
                "total_optimization_steps": steps.total_optimization_steps,
                "tutorial_formula": steps.tutorial_formula,
                "train_samples": steps.train_samples,
                "reg_samples": steps.reg_samples,
                "buckets": [{"width": w, "height": h, "count": n} for w, h, n in steps.buckets],
            },
            "dataset": {
                "subsets": [
                    {
                        "dir": str(f.subset.image_dir),
                        "repeats": f.subset.repeats,
                        "images": f.images,
                        "captions": f.captions,
                        "is_reg": f.subset.is_reg,
                        "sizes": sorted({f"{w}x{h}" for w, h in f.sizes}),
                    }
                    for f in self.facts.folders
                ]
            },
            "lora": {
                "parameters": self.lora_parameters,
                "file_bytes": self.lora_file_bytes,
                "precision": self.plan.output.save_precision,
            },
            "model": {"kind": self.facts.model_kind, "ref": self.facts.model_ref},
            "hardware": self.facts.hardware.to_json() if self.facts.hardware else None,
            "sd_scripts": {
                "path": str(self.facts.sd_scripts) if self.facts.sd_scripts else None,
                "found": self.facts.sd_scripts_found,
                "pinned_commit": sd_scripts_commit(),
            },
        }


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.id,
        "field": finding.field,
        "message": finding.message,
        "fix": finding.fix,
        "ref": finding.ref,
        "waived": finding.waived,
    }


def failed_report_json(exc: PlanError) -> dict[str, Any]:
    """`check --json` when the plan itself does not validate."""
    return {
        "ok": False,
        "errors": [
            {"id": p.id, "field": p.field, "message": p.message, "fix": p.fix, "waived": False}
            for p in exc.problems
        ],
        "advice": [],
        "steps": None,
        "dataset": {"subsets": []},
    }


# --- learning about the disk (I/O) -----------------------------------------------------------


def model_kind(plan: Plan, plan_dir: Path) -> tuple[ModelKind, str]:
    """Is model.base a file, a Diffusers folder, a Hub repo id, or a local path that is missing?"""
    from kohya_plan.hub import is_hub_ref

    base = plan.model.base
    path = Path(base).expanduser()
    if not path.is_absolute():
        path = plan_dir / path
    if path.is_file():
        return "file", str(path.absolute())
    if path.is_dir():
        return "diffusers", str(path.absolute())
    if is_hub_ref(base):
        return "hub", base
    return "missing", str(path.absolute())


def detect_model(kind: ModelKind, ref: str) -> tuple[str | None, str | None]:
    """(family read from the checkpoint's header or model_index.json, problem reading it)."""
    from kohya_plan.checkpoint import CheckpointError, detect_family

    path: Path | None = Path(ref) if kind in ("file", "diffusers") else None
    if kind == "hub":
        from kohya_plan.hub import cached_model, parse_model_ref

        path = cached_model(parse_model_ref(ref))
    if path is None:
        return None, None
    try:
        return detect_family(path), None
    except CheckpointError as exc:
        return None, str(exc)


def locate_sd_scripts(plan: Plan) -> Path:
    """launch.sd_scripts, else $KOHYA_SD_SCRIPTS, else vendor/sd-scripts or `kohya-plan setup`'s."""
    return find_sd_scripts(plan.launch.sd_scripts)


def find_sd_scripts(explicit: Path | None) -> Path:
    """The checkout: explicit, $KOHYA_SD_SCRIPTS, this clone's vendor/sd-scripts when it is
    there, the managed installation (`kohya-plan setup`), else where setup would put it."""
    if explicit is not None:
        return explicit
    env = os.environ.get("KOHYA_SD_SCRIPTS")
    if env:
        return Path(env).expanduser().absolute()
    vendor = Path(__file__).resolve().parent.parent / "vendor" / "sd-scripts"
    if (vendor / "train_network.py").is_file():
        return vendor
    from kohya_plan.setup.paths import layout, managed_installation

    installed = managed_installation()
    if installed is not None:
        return installed.sd_scripts
    # A clone of kohya-plan names its empty submodule; an installed package, setup's folder.
    return vendor if (vendor.parent.parent / ".gitmodules").is_file() else layout().sd_scripts


def locate_python(plan: Plan, plan_dir: Path, sd_scripts: Path) -> str | None:
    """The interpreter with sd-scripts' requirements; None means `accelerate` from PATH."""
    return find_python(plan.launch.python, plan_dir, sd_scripts)


def find_python(chosen: str | None, plan_dir: Path, sd_scripts: Path) -> str | None:
    """launch.python, $KOHYA_SD_PYTHON, .venv-sd beside the checkout, the managed
    installation's Python (for its checkout), this Python if it has accelerate, else None."""
    chosen = chosen or os.environ.get("KOHYA_SD_PYTHON")
    if chosen:
        if os.sep in chosen or "/" in chosen:
            path = Path(chosen).expanduser()
            return str(path if path.is_absolute() else (plan_dir / path).absolute())
        return chosen
    # scripts/setup-sd-scripts puts a venv beside the checkout's vendor/ folder.
    checkout = sd_scripts.parent.parent
    for candidate in (
        checkout / ".venv-sd" / "bin" / "python",
        checkout / ".venv-sd" / "Scripts" / "python.exe",
    ):
        if candidate.is_file():
            return str(candidate)
    from kohya_plan.setup.paths import managed_installation

    installed = managed_installation()
    if installed is not None and installed.sd_scripts == sd_scripts:
        return str(installed.python)
    if importlib.util.find_spec("accelerate") is not None:
        return sys.executable
    return None


def _folder_subsets(
    field: str, parent: Path, is_reg: bool
) -> tuple[list[ResolvedSubset], ParentFacts]:
    """sd-scripts' folder convention: each N_name subfolder is a subset with N repeats."""
    if not parent.is_dir():
        return [], ParentFacts(parent, field, parent.exists(), False, 0)
    folders = scan.list_repeat_folders(parent)
    ignored = tuple(f.name for f in folders if f.repeats is None)
    zero = tuple(f.name for f in folders if f.repeats is not None and f.repeats < 1)
    subsets = [
        ResolvedSubset(
            image_dir=f.path.absolute(),
            repeats=f.repeats,
            is_reg=is_reg,
            class_tokens=f.class_tokens,
        )
        for f in folders
        if f.repeats is not None and f.repeats >= 1
    ]
    direct = scan.scan_folder(parent, ".txt", sizes=False, captions=False).n_images
    return subsets, ParentFacts(parent, field, True, True, direct, ignored, zero, len(subsets))


def resolve_subsets(plan: Plan) -> tuple[list[ResolvedSubset], list[ParentFacts]]:
    """Subsets from train_dir/reg_dir (sd-scripts' N_name rule) and from dataset.subsets."""
    subsets: list[ResolvedSubset] = []
    parents: list[ParentFacts] = []
    # sd-scripts' order: training folders, then regularization folders.
    if plan.dataset.train_dir is not None:
        found, facts = _folder_subsets("dataset.train_dir", plan.dataset.train_dir, False)
        subsets += found
        parents.append(facts)
    for subset in plan.dataset.subsets:
        overrides = tuple(
            (key, value) for key in _SUBSET_OVERRIDES if (value := getattr(subset, key)) is not None
        )
        subsets.append(
            ResolvedSubset(
                image_dir=subset.image_dir,
                repeats=subset.repeats,
                is_reg=subset.is_reg,
                class_tokens=subset.class_tokens,
                overrides=overrides,
            )
        )
    if plan.dataset.reg_dir is not None:
        found, facts = _folder_subsets("dataset.reg_dir", plan.dataset.reg_dir, True)
        subsets += found
        parents.append(facts)
    return subsets, parents


def scan_subset(plan: Plan, subset: ResolvedSubset) -> FolderFacts:
    """Read one folder's image headers and captions the way sd-scripts will."""
    extension = dict(subset.overrides).get("caption_extension", plan.dataset.caption_extension)
    result = scan.scan_folder(subset.image_dir, str(extension))
    if not result.exists or not result.is_dir:
        return FolderFacts(subset, exists=False, images=0, sizes=())
    images = result.images
    state = scan.CaptionState

    def named(*states: scan.CaptionState) -> tuple[str, ...]:
        return tuple(i.name for i in images if i.caption in states)

    return FolderFacts(
        subset=subset,
        exists=True,
        images=len(images),
        sizes=tuple(size for i in images if (size := i.effective_size) is not None),
        missing_captions=named(state.MISSING),
        empty_captions=named(state.EMPTY, state.BLANK),
        non_utf8_captions=named(state.NOT_UTF8, state.UNREADABLE),
        unreadable=tuple(i.name for i in images if i.effective_size is None),
        duplicate_stems=tuple(" / ".join(group) for group in result.duplicate_stems),
        skipped_files=(
            result.wrong_case + result.unsupported + result.hidden_images + result.not_files
        ),
        caption_heads=tuple(i.caption_tokens for i in images if i.caption is state.OK),
    )


def compute_steps(plan: Plan, folders: Iterable[FolderFacts]) -> StepFacts | None:
    """sd-scripts' exact step count from image sizes (None when there is nothing to count)."""
    folders = [f for f in folders if f.exists and f.images]
    if not any(not f.subset.is_reg for f in folders):
        return None
    ds, t = plan.dataset, plan.training
    spec = DatasetSpec(
        subsets=[
            SubsetImages(
                sizes=f.sizes,
                repeats=f.subset.repeats,
                is_reg=f.subset.is_reg,
                image_dir=str(f.subset.image_dir),
            )
            for f in folders
        ],
        batch_size=t.batch_size,
        resolution=ds.size,
        enable_bucket=ds.enable_bucket,
        min_bucket_reso=ds.min_bucket_reso,
        max_bucket_reso=ds.max_bucket_reso,
        bucket_reso_steps=ds.bucket_reso_steps,
        bucket_no_upscale=ds.bucket_no_upscale,
    )
    try:
        count = batches_per_epoch([spec])
    except BucketError:
        return None  # the bucket-range rule reports it with the fix
    report = total_steps(
        count.total,
        epochs=t.epochs,
        max_train_steps=t.max_train_steps,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        num_processes=plan.launch.num_processes,
    )
    train = [f for f in folders if not f.subset.is_reg]
    samples = sum(f.images * f.subset.repeats for f in train)
    formula = samples * report.epochs / t.batch_size
    return StepFacts(
        batches_per_epoch=report.batches_per_epoch,
        steps_per_epoch=report.steps_per_epoch,
        epochs=report.epochs,
        total_optimization_steps=report.total_optimization_steps,
        tutorial_formula=formula,
        train_samples=count.train_samples,
        reg_samples=count.reg_samples,
        buckets=count.buckets,
    )


def gather_facts(plan: Plan, plan_dir: Path, *, hardware: bool = False) -> Facts:
    """Everything the checks need from the disk (and, with `hardware`, this machine)."""
    kind, ref = model_kind(plan, plan_dir)
    detected, problem = detect_model(kind, ref)
    subsets, parents = resolve_subsets(plan)
    folders = tuple(scan_subset(plan, s) for s in subsets)
    sd_scripts = locate_sd_scripts(plan)
    return Facts(
        model_kind=kind,
        model_ref=ref,
        model_family_detected=detected,
        model_problem=problem,
        parents=tuple(parents),
        folders=folders,
        sd_scripts=sd_scripts,
        sd_scripts_found=(sd_scripts / plan.script_name).is_file(),
        steps=compute_steps(plan, folders),
        hardware=_detect_hardware(plan) if hardware else None,
    )


def _detect_hardware(plan: Plan) -> Hardware:
    from kohya_plan.hardware import detect

    return detect(plan.output.dir)


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
class RenderedRun:
    """Every file of a run folder (name → text) and the launch command."""

    run_dir: Path
    files: dict[str, str]
    launch: Launch


def _header(report: CheckReport, what: str) -> str:
    return (
        f"{what}, made by kohya-plan {__version__} from {report.plan_path}\n"
        f"for kohya-ss/sd-scripts {sd_scripts_commit()[:10]}. Do not edit: change the plan and "
        "run `kohya-plan make` again."
    )


@dataclass(frozen=True)
class Inputs:
    """The model path and tokenizer folder sd-scripts gets (local once resolved)."""

    model: str
    tokenizer_cache_dir: Path


def resolve_inputs(report: CheckReport, *, download: bool) -> Inputs:
    """Make the base model and the CLIP tokenizer local before sd-scripts starts.

    With `download`, a Hub model goes into the Hugging Face cache and the tokenizer into
    `tokenizer_cache_dir` (so sd-scripts never fetches mid-run); without (a dry run), the
    cached path is used where there is one, else the repo id, and nothing is written.
    """
    from kohya_plan import hub

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


def render_run(report: CheckReport, run_dir: Path, inputs: Inputs | None = None) -> RenderedRun:
    """All files of a run folder, rendered for `run_dir` (pure apart from locating sd-scripts)."""
    plan, facts = report.plan, report.facts
    if inputs is None:
        inputs = resolve_inputs(report, download=False)
    files = RunFiles(run_dir)
    sd_scripts = facts.sd_scripts or locate_sd_scripts(plan)
    python = locate_python(plan, report.plan_path.parent, sd_scripts)
    launch = build_launch(plan, python=python, sd_scripts=sd_scripts, files=files)
    subsets = [f.subset for f in facts.folders if f.exists]
    rendered = {
        "plan.toml": dump_plan(plan, _header(report, "The validated plan")),
        "dataset.toml": render_dataset_toml(
            plan, subsets, _header(report, "sd-scripts dataset config (--dataset_config)")
        ),
        "config.toml": render_config_toml(
            plan,
            model=inputs.model,
            tokenizer_cache_dir=inputs.tokenizer_cache_dir,
            files=files,
            header=_header(report, "sd-scripts training config (--config_file)"),
        ),
        "prompts.txt": render_prompts(plan, _header(report, "Sample prompts (--sample_prompts)")),
        "command.sh": command_sh(launch),
        "command.ps1": command_ps1(launch),
    }
    return RenderedRun(run_dir, rendered, launch)


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
        "files": {k: rendered.files[k] for k in ("dataset.toml", "config.toml", "prompts.txt")},
    }


def next_run_dir(runs_dir: Path, name: str, now: float | None = None) -> Path:
    """`<runs>/<name>-<YYYYmmdd-HHMMSS>`, with -2, -3 … if that folder exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    candidate = runs_dir / f"{name}-{stamp}"
    counter = 2
    while candidate.exists():
        candidate = runs_dir / f"{name}-{stamp}-{counter}"
        counter += 1
    return candidate


def make_run(report: CheckReport) -> tuple[Path, RenderedRun]:
    """Create a NEW run folder (never reusing one) and write every file into it."""
    inputs = resolve_inputs(report, download=True)  # before any folder: errors leave nothing
    runs_dir = report.plan.runs_dir(report.plan_path.parent)
    runs_dir.mkdir(parents=True, exist_ok=True)
    while True:
        run_dir = next_run_dir(runs_dir, report.plan.output.name)
        try:
            run_dir.mkdir()  # exclusive: a folder made meanwhile by another `make` is skipped
            break
        except FileExistsError:
            continue
    rendered = render_run(report, run_dir, inputs)
    try:
        for name, text in rendered.files.items():
            with (run_dir / name).open("x", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
        (run_dir / "command.sh").chmod(0o755)
        source = report.plan_path.read_bytes()
        (run_dir / "plan.source.toml").write_bytes(source)
        write_launch_json(run_dir, rendered)
    except BaseException:
        for child in run_dir.iterdir():
            child.unlink()
        run_dir.rmdir()
        raise
    return run_dir, rendered


def write_launch_json(run_dir: Path, rendered: RenderedRun) -> None:
    """launch.json: what `kohya-plan launch RUN_DIR` runs (argv exactly as shown)."""
    import json

    data = {
        "kohya_plan_version": __version__,
        "argv": rendered.launch.argv,
        "cwd": str(rendered.launch.cwd),
        "env": rendered.launch.env,
    }
    (run_dir / "launch.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
