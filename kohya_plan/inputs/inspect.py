"""What a plan points at, learned from the disk: models, folders, images, captions, steps.

`gather_facts` is the I/O edge the checks stand on: it fills `Facts` (plain data) so that
every rule stays pure. It reads headers and listings only, never whole images or weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kohya_plan.inputs import scan
from kohya_plan.inputs.accelerate_config import read_default_config
from kohya_plan.inputs.facts import (
    Facts,
    FolderFacts,
    ModelKind,
    ParentFacts,
    ResolvedSubset,
    StepFacts,
)
from kohya_plan.inputs.trainer import locate_sd_scripts
from kohya_plan.steps.buckets import BucketError
from kohya_plan.steps.count import DatasetSpec, SubsetImages, batches_per_epoch, total_steps

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kohya_plan.inputs.hardware import Hardware
    from kohya_plan.plan import Plan

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


def model_kind(plan: Plan, plan_dir: Path) -> tuple[ModelKind, str]:
    """Is model.base a file, a Diffusers folder, a Hub repo id, or a local path that is missing?"""
    from kohya_plan.inputs.hub import is_hub_ref

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
    from kohya_plan.inputs.checkpoint import CheckpointError, detect_family

    path: Path | None = Path(ref) if kind in ("file", "diffusers") else None
    if kind == "hub":
        from kohya_plan.inputs.hub import cached_model, parse_model_ref

        path = cached_model(parse_model_ref(ref))
    if path is None:
        return None, None
    try:
        return detect_family(path), None
    except CheckpointError as exc:
        return None, str(exc)


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
    processes = plan.launch.num_processes
    single = None
    if processes > 1:
        single = total_steps(
            count.total,
            epochs=t.epochs,
            max_train_steps=t.max_train_steps,
            gradient_accumulation_steps=t.gradient_accumulation_steps,
        )
    return StepFacts(
        batches_per_epoch=report.batches_per_epoch,
        steps_per_epoch=report.steps_per_epoch,
        epochs=report.epochs,
        total_optimization_steps=report.total_optimization_steps,
        tutorial_formula=formula,
        train_samples=count.train_samples,
        reg_samples=count.reg_samples,
        buckets=count.buckets,
        num_processes=processes,
        batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        epochs_given=t.epochs is not None,
        dataset_batches=count.total,
        one_process_epochs=single.epochs if single else None,
        one_process_steps=single.total_optimization_steps if single else None,
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
        accelerate_config=read_default_config(),
        deepspeed_paths=_deepspeed_paths(plan),
    )


def _deepspeed_paths(plan: Plan) -> tuple[tuple[str, Path, bool], ...]:
    ds = plan.launch.deepspeed
    if ds is None:
        return ()
    found = []
    for what in ("optimizer", "param"):
        path = getattr(ds, f"offload_{what}_nvme_path")
        if path is not None:
            found.append((f"launch.deepspeed.offload_{what}_nvme_path", path, path.is_dir()))
    return tuple(found)


def _detect_hardware(plan: Plan) -> Hardware:
    from kohya_plan.inputs.hardware import detect

    return detect(plan.output.dir)
