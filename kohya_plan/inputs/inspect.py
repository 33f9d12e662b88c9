"""What a plan points at, learned from the disk: models, folders, images, captions, steps.

`gather_facts` is the I/O edge the checks stand on: it fills `Facts` (plain data) so that
every rule stays pure. It reads headers and listings only, never whole images or weights.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kohya_plan.inputs import scan
from kohya_plan.inputs.accelerate_config import read_default_config
from kohya_plan.inputs.checkpoint import CHECKPOINT_SUFFIXES
from kohya_plan.inputs.facts import (
    DeepStats,
    Facts,
    FolderFacts,
    ModelFileFacts,
    ModelKind,
    ParentFacts,
    ResolvedSubset,
    StepFacts,
    WriteTarget,
)
from kohya_plan.inputs.paths import write_target
from kohya_plan.inputs.trainer import locate_sd_scripts
from kohya_plan.steps.buckets import BucketError
from kohya_plan.steps.count import DatasetSpec, SubsetImages, batches_per_epoch, total_steps

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

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


def ref_kind(ref: str, plan_dir: Path) -> tuple[ModelKind, str]:
    """Is a model reference a file, a folder, a Hub reference, or a local path that is missing?"""
    from kohya_plan.inputs.hub import is_hub_ref

    path = Path(ref).expanduser()
    if not path.is_absolute():
        path = plan_dir / path
    if path.is_file():
        return "file", str(path.absolute())
    if path.is_dir():
        return "diffusers", str(path.absolute())
    if is_hub_ref(ref):
        return "hub", ref
    return "missing", str(path.absolute())


def model_kind(plan: Plan, plan_dir: Path) -> tuple[ModelKind, str]:
    """Is model.base a file, a Diffusers folder, a Hub repo id, or a local path that is missing?"""
    return ref_kind(plan.model.base, plan_dir)


def _local(kind: ModelKind, ref: str) -> Path | None:
    if kind in ("file", "diffusers"):
        return Path(ref)
    if kind == "hub":
        from kohya_plan.inputs.hub import cached_model, parse_model_ref

        return cached_model(parse_model_ref(ref))
    return None


def detect_model(kind: ModelKind, ref: str) -> tuple[str | None, str | None]:
    """(family read from the checkpoint's header or model_index.json, problem reading it)."""
    from kohya_plan.inputs.checkpoint import CheckpointError, detect_family

    path = _local(kind, ref)
    if path is None:
        return None, None
    try:
        return detect_family(path), None
    except CheckpointError as exc:
        return None, str(exc)


def model_shape(kind: ModelKind, ref: str, detected: str | None) -> dict[str, int]:
    """Block/layer counts of a local (or cached) model (inputs.checkpoint.model_shape)."""
    from kohya_plan.inputs.checkpoint import model_shape as read_shape

    path = _local(kind, ref)
    return {} if path is None else read_shape(path, detected)


def model_file_facts(
    plan: Plan, plan_dir: Path
) -> tuple[tuple[ModelFileFacts, ...], dict[str, int]]:
    """The family's other model files (FLUX.1: ae, clip_l, t5xxl), and their shapes."""
    found = []
    shape: dict[str, int] = {}
    for spec in plan.family.model_files:
        ref = getattr(plan.model, spec.key)
        if ref is None:
            continue
        kind, where = ref_kind(ref, plan_dir)
        detected, problem = detect_model(kind, where) if kind != "diffusers" else (None, None)
        found.append(ModelFileFacts(spec.key, where, kind, detected, problem))
        if detected == spec.kind:
            shape.update(model_shape(kind, where, detected))
    return tuple(found), shape


def not_a_model(kind: ModelKind, ref: str) -> str | None:
    """What a local model.base is when it is not a model (None: it is one, or is remote).

    A folder must be a Diffusers pipeline with its parts (model_index.json and what it
    lists); a file a checkpoint (safetensors or a PyTorch file). The text reads after
    "model.base is …".
    """
    from kohya_plan.inputs.checkpoint import diffusers_family, not_a_checkpoint
    from kohya_plan.inputs.hub.pipeline import missing_pipeline_parts

    path = Path(ref)
    if kind == "file":
        return not_a_checkpoint(path)
    if kind != "diffusers":
        return None
    missing = missing_pipeline_parts(path)
    if not missing or diffusers_family(path) == "vae":
        return None  # complete, or a VAE folder (the family check says so)
    if missing != ["model_index.json"]:
        listed = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        return f"a Diffusers folder that lacks {listed}"
    try:
        entries = sorted(p.name for p in path.iterdir())
    except OSError:
        entries = []
    if not entries:
        return "an empty folder"
    files = [n for n in entries if n.lower().endswith(CHECKPOINT_SUFFIXES)]
    if files:
        shown = ", ".join(files[:3])
        return f"a folder without model_index.json (not a Diffusers model); it holds {shown}"
    return "a folder without model_index.json (not a Diffusers model)"


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
    # sd-scripts reads image sizes from the family's latent cache files where they exist
    suffix = plan.family.latent_cache_suffix
    result = scan.scan_folder(subset.image_dir, str(extension), latent_cache_suffix=suffix)
    if not result.exists or not result.is_dir:
        return FolderFacts(
            subset, exists=False, images=0, sizes=(), real_path=str(subset.image_dir)
        )
    images = result.images
    state = scan.CaptionState

    def named(*states: scan.CaptionState) -> tuple[str, ...]:
        return tuple(i.name for i in images if i.caption in states)

    limit = scan.PIL_MAX_IMAGE_PIXELS
    return FolderFacts(
        subset=subset,
        exists=True,
        images=len(images),
        sizes=tuple(size for i in images if (size := i.effective_size) is not None),
        missing_captions=named(state.MISSING),
        empty_captions=named(state.EMPTY),
        non_utf8_captions=named(state.NOT_UTF8, state.UNREADABLE),
        unreadable=tuple(i.name for i in images if i.effective_size is None),
        duplicate_stems=tuple(" / ".join(group) for group in result.duplicate_stems),
        # not_files (a folder or a broken link named like an image) are globbed and crash
        # sd-scripts: they are among the unreadable ones, not the skipped ones
        skipped_files=result.wrong_case + result.unsupported + result.hidden_images,
        caption_heads=tuple(i.caption_tokens for i in images if i.caption is state.OK),
        blank_captions=named(state.BLANK),
        bom_captions=tuple(i.name for i in images if i.caption_bom),
        orphan_captions=result.orphan_captions,
        nested=tuple(
            (name, n)
            for name in result.subfolders
            if (n := scan.count_images(subset.image_dir / name, besides=subset.image_dir))
        ),
        large_images=tuple(
            (i.name, pixels)
            for i in images
            if i.size is not None and (pixels := max(1, i.size[0]) * max(1, i.size[1])) > limit
        ),
        real_path=_real_path(subset.image_dir),
        image_names=tuple(i.name for i in images),
    )


def _real_path(path: Path) -> str:
    try:
        return os.path.normcase(os.path.realpath(path))
    except (OSError, ValueError):
        return str(path)


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


DeepMode = Literal["full", "cached"]
"""`check --deep` decodes every image ("full"); `launch` only what changed ("cached")."""


def gather_facts(
    plan: Plan,
    plan_dir: Path,
    *,
    hardware: bool = False,
    vram_gib: float | None = None,
    deep: DeepMode | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Facts:
    """Everything the checks need from the disk (and, with `hardware`, this machine);
    `vram_gib` is the GPU memory to plan for (`check --vram`). With ``deep``, every image is
    also decoded with Pillow (``progress(done, total)``)."""
    kind, ref = model_kind(plan, plan_dir)
    detected, problem = detect_model(kind, ref)
    wrong = not_a_model(kind, ref)
    if wrong is not None:
        detected, problem = None, None  # what it is says more than why it cannot be read
    files, file_shape = model_file_facts(plan, plan_dir)
    shape = {**file_shape, **model_shape(kind, ref, detected)}
    subsets, parents = resolve_subsets(plan)
    folders = tuple(scan_subset(plan, s) for s in subsets)
    stats = None
    if deep is not None:
        folders, stats = _decode(folders, reuse=deep == "cached", progress=progress)
    sd_scripts = locate_sd_scripts(plan)
    return Facts(
        model_kind=kind,
        model_ref=ref,
        model_family_detected=detected,
        model_problem=problem,
        model_shape=shape,
        model_files=files,
        vram_gib=vram_gib,
        model_not_a_model=wrong,
        parents=tuple(parents),
        folders=folders,
        sd_scripts=sd_scripts,
        sd_scripts_found=(sd_scripts / plan.script_name).is_file(),
        steps=compute_steps(plan, folders),
        hardware=_detect_hardware(plan) if hardware else None,
        write_targets=write_targets(plan, plan_dir),
        deep=stats,
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


def _decode(
    folders: tuple[FolderFacts, ...],
    *,
    reuse: bool,
    progress: Callable[[int, int], None] | None,
) -> tuple[tuple[FolderFacts, ...], DeepStats]:
    """Decode each folder's images once (a folder listed twice is one folder)."""
    from kohya_plan.inputs.decode import deep_check

    limit = 2 * scan.PIL_MAX_IMAGE_PIXELS
    jobs: dict[str, tuple[Path, list[str]]] = {}
    for folder in folders:
        if not folder.exists or folder.real_path in jobs:
            continue
        # headers sd-scripts cannot read, and bombs Pillow refuses, are errors already
        skip = set(folder.unreadable) | {n for n, pixels in folder.large_images if pixels > limit}
        names = [n for n in folder.image_names if n not in skip]
        jobs[folder.real_path] = (folder.subset.image_dir, names)
    problems, stats = deep_check(jobs.values(), reuse=reuse, progress=progress)
    by_real = {real: problems.get(path, ()) for real, (path, _names) in jobs.items()}
    return (
        tuple(
            replace(f, decode_errors=by_real.get(f.real_path, ())) if f.exists else f
            for f in folders
        ),
        stats,
    )


def write_targets(plan: Plan, plan_dir: Path) -> tuple[WriteTarget, ...]:
    """The folders a run writes: output.dir (sd-scripts), the runs folder (`make`), and the
    tokenizer cache when `make` still has to fill it."""
    from kohya_plan.inputs import hub
    from kohya_plan.inputs.hub.tokenizers import TOKENIZERS, tokenizer_ready

    targets = [
        write_target("output.dir", plan.output.dir),
        write_target("output.runs_dir", plan.runs_dir(plan_dir)),
    ]
    cache = plan.model.tokenizer_cache_dir or hub.default_tokenizer_cache()
    sources = TOKENIZERS.get(plan.model.family, ())
    if not all(tokenizer_ready(cache / source.folder, source) for source in sources):
        targets.append(write_target("model.tokenizer_cache_dir", cache))
    return tuple(targets)


def _detect_hardware(plan: Plan) -> Hardware:
    from kohya_plan.inputs.hardware import detect

    return detect(plan.output.dir)
