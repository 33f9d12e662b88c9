"""The tutorial's rules and sd-scripts' pitfalls, checked against a plan and its data (pure).

Each finding carries a rule id from `kohya_plan.plan.rules.RULES`; errors block `make` unless
the plan waives the id in `rules.allow`, advice is printed and never blocks.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kohya_plan.facts import Facts, FolderFacts
from kohya_plan.plan import RULES, Plan
from kohya_plan.plan.optimizer import is_adaptive

if TYPE_CHECKING:
    from kohya_plan.plan.rules import Severity

# sd-scripts' SD1.5 LoRA (TE + U-Net, no conv): 589,824 parameters per unit of rank (§12.3).
SD15_PARAMS_PER_RANK = 589_824
SD15_UNET_PARAMS_PER_RANK = 423_936
_ANIME_HINTS = ("anime", "anything", "counterfeit", "waifu", "novelai", "nai", "pony", "meina")
_REAL_HINTS = ("realistic", "photon", "real", "cyberrealistic", "epicrealism", "majicmix")


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of a rule: its id, the plan field it concerns, what and how to fix."""

    id: str
    field: str
    message: str
    fix: str = ""
    waived: bool = False

    @property
    def severity(self) -> Severity:
        return RULES[self.id].severity

    @property
    def ref(self) -> str:
        return RULES[self.id].ref

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"{text} — {self.fix}" if self.fix else text


Check = Callable[[Plan, Facts], Iterator[Finding]]
_CHECKS: list[Check] = []


def check(func: Check) -> Check:
    _CHECKS.append(func)
    return func


def run_checks(plan: Plan, facts: Facts) -> list[Finding]:
    """Every finding, in rule order, with waivers applied."""
    allowed = set(plan.rules.allow)
    found: list[Finding] = []
    for func in _CHECKS:
        for finding in func(plan, facts):
            if finding.id in allowed:
                finding = Finding(finding.id, finding.field, finding.message, finding.fix, True)
            found.append(finding)
    return found


def blocking(findings: list[Finding]) -> list[Finding]:
    """Errors that are not waived."""
    return [f for f in findings if f.severity == "error" and not f.waived]


def lora_parameters(plan: Plan) -> int:
    """Parameters of the LoRA file for SD1.5 (T11: the file size tells the rank)."""
    per_rank = SD15_PARAMS_PER_RANK
    if plan.network.train_unet_only:
        per_rank = SD15_UNET_PARAMS_PER_RANK
    elif plan.network.train_text_encoder_only:
        per_rank = SD15_PARAMS_PER_RANK - SD15_UNET_PARAMS_PER_RANK
    return per_rank * plan.network.dim


def lora_file_bytes(plan: Plan) -> int:
    """Tensor bytes of one saved LoRA file (headers add about 0.1 MB)."""
    width = 4 if plan.output.save_precision == "float" else 2
    return lora_parameters(plan) * width


# --- network and optimizer --------------------------------------------------------------


@check
def _alpha(plan: Plan, facts: Facts) -> Iterator[Finding]:
    n = plan.network
    if n.alpha > n.dim:
        yield Finding(
            "alpha-above-dim",
            "network.alpha",
            f"alpha {n.alpha:g} is larger than the rank (network.dim = {n.dim}); "
            f"the update would be scaled by {n.alpha / n.dim:g}",
            f"set alpha to at most {n.dim} (T12: commonly half the rank, {n.dim / 2:g})",
        )


def _text_encoder_trained(plan: Plan) -> bool:
    return not plan.network.train_unet_only and plan.optimizer.effective_text_encoder_lr > 0


@check
def _te_ratio(plan: Plan, facts: Facts) -> Iterator[Finding]:
    o = plan.optimizer
    if not _text_encoder_trained(plan) or is_adaptive(o.type) or o.type == "Adafactor":
        return
    unet, te = o.effective_unet_lr, o.effective_text_encoder_lr
    if unet <= 0:
        return
    ratio = te / unet
    low_ok = ratio > 0.1 or math.isclose(ratio, 0.1, rel_tol=1e-9)
    high_ok = ratio < 0.5 or math.isclose(ratio, 0.5, rel_tol=1e-9)
    if low_ok and high_ok:
        return
    source = "unet_lr" if o.unet_lr is not None else "learning_rate"
    yield Finding(
        "te-lr-ratio",
        "optimizer.text_encoder_lr",
        f"text-encoder LR {te:g} is {ratio:.3g}× the U-Net LR ({source} = {unet:g}), "
        "outside 1/10..1/2",
        f"set text_encoder_lr between {unet / 10:g} and {unet / 2:g} (T17), "
        'or waive with rules.allow = ["te-lr-ratio"]',
    )


@check
def _te_zero(plan: Plan, facts: Facts) -> Iterator[Finding]:
    if plan.optimizer.text_encoder_lr == 0 and not plan.network.train_unet_only:
        yield Finding(
            "te-lr-zero",
            "optimizer.text_encoder_lr",
            "0 still builds and saves text-encoder LoRA modules (with zero weights)",
            "set network.train_unet_only = true instead",
        )


@check
def _adaptive(plan: Plan, facts: Facts) -> Iterator[Finding]:
    o = plan.optimizer
    if is_adaptive(o.type) and o.learning_rate <= 0.1:
        yield Finding(
            "adaptive-lr",
            "optimizer.learning_rate",
            f"{o.type} adapts the step size itself; learning_rate {o.learning_rate:g} is too low",
            "set learning_rate = 1.0 (and unet_lr/text_encoder_lr unset or 1.0)",
        )


@check
def _scheduler(plan: Plan, facts: Facts) -> Iterator[Finding]:
    o = plan.optimizer
    if o.scheduler == "constant" and o.warmup_steps:
        yield Finding(
            "scheduler-warmup",
            "optimizer.warmup_steps",
            f"the constant scheduler takes no warmup (got {o.warmup_steps}); sd-scripts would "
            "stop with a ValueError after loading the model",
            'set warmup_steps = 0 or scheduler = "constant_with_warmup"',
        )
    if o.scheduler == "cosine_with_min_lr" and o.min_lr_ratio is None:
        yield Finding(
            "scheduler-min-lr",
            "optimizer.min_lr_ratio",
            "cosine_with_min_lr needs a minimum LR ratio",
            "set min_lr_ratio, e.g. 0.1",
        )
    if o.scheduler == "adafactor" and o.type != "Adafactor":
        yield Finding(
            "scheduler-adafactor",
            "optimizer.scheduler",
            f'the adafactor scheduler works only with the Adafactor optimizer, not "{o.type}"',
            'use scheduler = "cosine_with_restarts" or "constant"',
        )
    if o.scheduler == "polynomial" and o.learning_rate <= 1e-7:
        yield Finding(
            "scheduler-polynomial-lr",
            "optimizer.learning_rate",
            f"polynomial decays to 1e-7, which is not below learning_rate {o.learning_rate:g}",
            "raise learning_rate or use another scheduler",
        )


@check
def _only_flags(plan: Plan, facts: Facts) -> Iterator[Finding]:
    n = plan.network
    if n.train_unet_only and n.train_text_encoder_only:
        yield Finding(
            "both-only-flags",
            "network.train_text_encoder_only",
            "train_unet_only and train_text_encoder_only together leave nothing to train",
            "keep at most one of them",
        )


@check
def _rank(plan: Plan, facts: Facts) -> Iterator[Finding]:
    dim = plan.network.dim
    if not 4 <= dim <= 128:
        mib = lora_file_bytes(plan) / 2**20
        yield Finding(
            "rank-range",
            "network.dim",
            f"rank {dim} is outside the usual 4..128 (file ≈ {mib:.0f} MiB)",
            "T11: 128 gives the mainstream 144 MB file; smaller ranks learn less detail",
        )


# --- training, sampling ------------------------------------------------------------------


@check
def _cache_latents(plan: Plan, facts: Facts) -> Iterator[Finding]:
    t, ds = plan.training, plan.dataset
    if not (t.cache_latents or t.cache_latents_to_disk):
        return
    offenders = []
    if ds.color_aug or any(s.color_aug for s in ds.subsets):
        offenders.append("color_aug")
    if ds.random_crop or any(s.random_crop for s in ds.subsets):
        offenders.append("random_crop")
    if offenders:
        yield Finding(
            "cache-latents-augment",
            "training.cache_latents",
            f"cached latents cannot be used with {' and '.join(offenders)}; sd-scripts would stop "
            "with an AssertionError",
            f"set cache_latents = false or turn off {' and '.join(offenders)}",
        )


@check
def _workers(plan: Plan, facts: Facts) -> Iterator[Finding]:
    t = plan.training
    if t.persistent_data_loader_workers and t.max_data_loader_n_workers == 0:
        yield Finding(
            "persistent-workers",
            "training.persistent_data_loader_workers",
            "persistent workers need at least one data-loader worker",
            "set max_data_loader_n_workers = 1 or persistent_data_loader_workers = false",
        )


@check
def _epochs(plan: Plan, facts: Facts) -> Iterator[Finding]:
    epochs = facts.steps.epochs if facts.steps else plan.training.epochs
    if epochs is not None and not 5 <= epochs <= 10:
        yield Finding(
            "epochs-range",
            "training.epochs",
            f"{epochs} epochs is outside the tutorial's 5..10",
            "T8: 5 to 10 epochs, and pick the best epoch by its samples",
        )


@check
def _sampling(plan: Plan, facts: Facts) -> Iterator[Finding]:
    s = plan.sampling
    scheduled = s.every_n_epochs or s.every_n_steps or s.at_first
    if scheduled and not s.prompts:
        yield Finding(
            "sampling-no-prompts",
            "sampling.prompts",
            "sampling is scheduled but there are no prompts; sd-scripts would crash at the "
            "first sample",
            'add prompts = ["masterpiece, best quality, 1girl --n low quality --w 512 --h 512"]',
        )
    if s.prompts and not scheduled:
        yield Finding(
            "prompts-unused",
            "sampling.every_n_epochs",
            "prompts are given but no sample is ever made",
            "T24: set every_n_epochs = 1",
        )


# --- resolution and buckets ----------------------------------------------------------------


@check
def _buckets(plan: Plan, facts: Facts) -> Iterator[Finding]:
    ds = plan.dataset
    step = 32 if plan.model.family == "sdxl" else 64
    if ds.enable_bucket and ds.bucket_reso_steps % step:
        yield Finding(
            "bucket-steps",
            "dataset.bucket_reso_steps",
            f"{ds.bucket_reso_steps} is not a multiple of {step}; sd-scripts asserts it is",
            f"use bucket_reso_steps = {step}",
        )
    if not ds.enable_bucket or ds.bucket_no_upscale:
        return
    w, h = ds.size
    if min(w, h) < ds.min_bucket_reso:
        yield Finding(
            "bucket-range",
            "dataset.min_bucket_reso",
            f"min_bucket_reso {ds.min_bucket_reso} is above the resolution's short side "
            f"{min(w, h)}",
            f"set min_bucket_reso to at most {min(w, h)}",
        )
    if max(w, h) > ds.max_bucket_reso:
        yield Finding(
            "bucket-range",
            "dataset.max_bucket_reso",
            f"max_bucket_reso {ds.max_bucket_reso} is below the resolution's long side {max(w, h)}",
            f"set max_bucket_reso to at least {max(w, h)}",
        )


# --- model -----------------------------------------------------------------------------


@check
def _model(plan: Plan, facts: Facts) -> Iterator[Finding]:
    if facts.model_kind == "missing":
        yield Finding(
            "model-missing",
            "model.base",
            f"{facts.model_ref} does not exist; sd-scripts would fail only after scanning "
            "the dataset",
            "fix the path (relative paths are relative to the plan file) or give a Hub repo id",
        )
    if facts.model_problem is not None:
        yield Finding(
            "model-unreadable",
            "model.base",
            f"{facts.model_ref} cannot be read: {facts.model_problem}",
            "download or copy the checkpoint again",
        )
    from kohya_plan.checkpoint import family_problem

    problem = family_problem(facts.model_family_detected, plan.model.family)
    if problem is not None:
        message, _, fix = problem.partition("; ")
        yield Finding("model-family", "model.base", f"{plan.model.base} is {message}", fix)


@check
def _clip_skip(plan: Plan, facts: Facts) -> Iterator[Finding]:
    if plan.model.family == "sdxl":
        if plan.model.clip_skip is not None:
            yield Finding(
                "clip-skip-style",
                "model.clip_skip",
                "SDXL training ignores clip_skip",
                "remove clip_skip",
            )
        return
    name = plan.model.base.lower()
    anime = any(h in name for h in _ANIME_HINTS)
    real = any(h in name for h in _REAL_HINTS)
    skip = plan.model.clip_skip or 1
    if plan.model.clip_skip is None:
        yield Finding(
            "clip-skip-style",
            "model.clip_skip",
            "not set, so sd-scripts uses 1",
            "T23: set clip_skip = 2 for anime models, 1 for realistic ones",
        )
    elif anime and skip == 1:
        yield Finding(
            "clip-skip-style",
            "model.clip_skip",
            "1 with what looks like an anime model",
            "T23: anime models are usually trained with clip_skip = 2",
        )
    elif real and skip == 2:
        yield Finding(
            "clip-skip-style",
            "model.clip_skip",
            "2 with what looks like a realistic model",
            "T23: realistic models are usually trained with clip_skip = 1",
        )


# --- dataset ------------------------------------------------------------------------------


@check
def _parents(plan: Plan, facts: Facts) -> Iterator[Finding]:
    for parent in facts.parents:
        field = parent.field
        if not parent.exists:
            yield Finding(
                "dataset-missing",
                field,
                f"{parent.path} does not exist",
                "check the path (relative paths are relative to the plan file)",
            )
            continue
        if not parent.is_dir:
            yield Finding("dataset-missing", field, f"{parent.path} is not a folder", "")
            continue
        name_repeats = parent.path.name.split("_", 1)[0]
        if parent.direct_images and parent.repeat_folders == 0:
            if name_repeats.isdigit():
                fix = f"set {field.rsplit('.', 1)[-1]} to its parent folder, {parent.path.parent}"
            else:
                fix = (
                    f"move the images into a folder named like 10_{parent.path.name} inside it, "
                    "or list the folder under [[dataset.subsets]]"
                )
            yield Finding(
                "dataset-trap",
                field,
                f"{parent.path} holds the images itself; sd-scripts wants the PARENT of "
                "N_name folders (T3)",
                fix,
            )
        elif parent.repeat_folders == 0 and not parent.ignored_folders:
            yield Finding(
                "dataset-no-folders",
                field,
                f"{parent.path} has no N_name folders, so sd-scripts finds no data (and exits 0)",
                f"put the images in a folder like {parent.path / '10_name'}",
            )
        for name in parent.ignored_folders:
            yield Finding(
                "folder-no-repeats",
                field,
                f"folder {name!r} has no repeat number, so sd-scripts ignores it",
                f"rename it to something like 10_{name} (T4: the number is the repeat count)",
            )
        for name in parent.zero_repeat_folders:
            yield Finding(
                "folder-zero-repeats",
                field,
                f"folder {name!r} has a repeat count below 1, so sd-scripts skips it silently",
                "rename it with a repeat count of 1 or more",
            )


def _folder_field(plan: Plan, folder: FolderFacts) -> str:
    for index, subset in enumerate(plan.dataset.subsets):
        if subset.image_dir == folder.subset.image_dir:
            return f"dataset.subsets[{index}].image_dir"
    return "dataset.reg_dir" if folder.subset.is_reg else "dataset.train_dir"


def _names(items: tuple[str, ...], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


@check
def _folders(plan: Plan, facts: Facts) -> Iterator[Finding]:
    ext = plan.dataset.caption_extension
    for folder in facts.folders:
        field = _folder_field(plan, folder)
        where = folder.subset.image_dir
        if not folder.exists:
            yield Finding("dataset-missing", field, f"{where} does not exist", "check the path")
            continue
        if folder.images == 0:
            yield Finding(
                "no-images",
                field,
                f"{where} holds no .png/.jpg/.jpeg/.webp/.bmp images",
                "add images, or fix the folder",
            )
            continue
        if folder.missing_captions:
            n = len(folder.missing_captions)
            fallback = (
                f"the caption {folder.subset.class_tokens!r}"
                if folder.subset.class_tokens
                else "an empty caption"
            )
            yield Finding(
                "missing-captions",
                field,
                f"{n} of {folder.images} images in {where.name} have no {ext} caption "
                f"({_names(folder.missing_captions)}); sd-scripts would train them with "
                f"{fallback}",
                f"write the captions, or set dataset.caption_extension if they use another "
                f"extension (now {ext!r})",
            )
        if folder.empty_captions:
            yield Finding(
                "empty-caption",
                field,
                f"empty caption files in {where.name}: {_names(folder.empty_captions)}; "
                "sd-scripts stops with 'caption file is empty'",
                "write a caption or delete the empty file",
            )
        if folder.non_utf8_captions:
            yield Finding(
                "caption-not-utf8",
                field,
                f"captions not in UTF-8 in {where.name}: {_names(folder.non_utf8_captions)}",
                "re-save them as UTF-8",
            )
        if folder.unreadable:
            yield Finding(
                "unreadable-image",
                field,
                f"cannot read the image size of {_names(folder.unreadable)} in {where.name}",
                "re-save or remove these files",
            )
        if folder.duplicate_stems:
            yield Finding(
                "duplicate-stems",
                field,
                f"images share a name in {where.name}: {_names(folder.duplicate_stems)}, so they "
                "share one caption file",
                "rename one of each pair",
            )
        if folder.skipped_files:
            yield Finding(
                "skipped-files",
                field,
                f"sd-scripts will not read {_names(folder.skipped_files)} in {where.name}",
                "convert them to .png/.jpg, or use a lower-case extension",
            )


@check
def _image_counts(plan: Plan, facts: Facts) -> Iterator[Finding]:
    train = [f for f in facts.folders if not f.subset.is_reg and f.exists]
    if not train:
        return
    images = sum(f.images for f in train)
    if images and not 20 <= images <= 50:
        yield Finding(
            "image-count",
            "dataset",
            f"{images} training images; the tutorial suggests 20 to 50",
            "T7: usually 20 to 50 varied, well-captioned images",
        )
    sizes = {size for f in facts.folders for size in f.sizes}
    ds = plan.dataset
    if not ds.enable_bucket and len(sizes) > 1:
        yield Finding(
            "mixed-sizes-no-bucket",
            "dataset.enable_bucket",
            f"images come in {len(sizes)} different sizes but buckets are off",
            "T13: set enable_bucket = true",
        )
    if not ds.enable_bucket and not plan.training.cache_latents:
        wrong = sorted({s for s in sizes if s != ds.size})
        if wrong:
            w, h = ds.size
            yield Finding(
                "image-size-no-bucket",
                "dataset.resolution",
                f"without buckets or cached latents every image must be {w}x{h}; "
                f"found {', '.join(f'{a}x{b}' for a, b in wrong[:3])}",
                "set enable_bucket = true or training.cache_latents = true",
            )


@check
def _keep_tokens(plan: Plan, facts: Facts) -> Iterator[Finding]:
    heads = [h for f in facts.folders if not f.subset.is_reg for h in f.caption_heads if h]
    if len(heads) < 2:
        return
    keep = plan.dataset.keep_tokens
    # How many leading tags do (almost) all captions share? Those are the trigger words.
    shared = 0
    for position in range(max(len(h) for h in heads)):
        tags = Counter(h[position] if len(h) > position else "" for h in heads)
        tag, count = tags.most_common(1)[0]
        if not tag or count < 0.9 * len(heads):
            break
        shared += 1
    trigger = ", ".join(heads[0][:shared]) if shared else ""
    if shared and keep == 0 and plan.dataset.shuffle_caption:
        yield Finding(
            "keep-tokens",
            "dataset.keep_tokens",
            f"captions start with the trigger word(s) {trigger!r} but keep_tokens is 0, so "
            "shuffling moves them",
            f"T22: set keep_tokens = {shared}",
        )
    elif keep > shared and plan.dataset.shuffle_caption:
        detail = f"only {trigger!r} is" if shared else "no tag is"
        yield Finding(
            "keep-tokens",
            "dataset.keep_tokens",
            f"keep_tokens = {keep} but {detail} shared by the captions' first tags",
            f"T22: set keep_tokens = {shared} or start every caption with the trigger words",
        )
    elif keep and not plan.dataset.shuffle_caption:
        yield Finding(
            "keep-tokens",
            "dataset.keep_tokens",
            f"keep_tokens = {keep} has no effect without shuffle_caption",
            "set shuffle_caption = true, or keep_tokens = 0",
        )


@check
def _steps(plan: Plan, facts: Facts) -> Iterator[Finding]:
    steps = facts.steps
    if steps is None:
        return
    if not 1000 <= steps.total_optimization_steps <= 2000:
        yield Finding(
            "steps-range",
            "training.epochs",
            f"{steps.total_optimization_steps} total steps; the tutorial aims for 1000 to 2000",
            "T6: adjust repeats (folder number), epochs or batch size",
        )


@check
def _reg(plan: Plan, facts: Facts) -> Iterator[Finding]:
    train = sum(f.images * f.subset.repeats for f in facts.folders if not f.subset.is_reg)
    reg = sum(f.images * f.subset.repeats for f in facts.folders if f.subset.is_reg)
    if train and reg > train:
        yield Finding(
            "reg-unused",
            "dataset.reg_dir",
            f"{reg} regularization samples for {train} training samples: sd-scripts uses only "
            f"the first {train}",
            "fewer regularization images, or more repeats of the training images",
        )


@check
def _sd_scripts(plan: Plan, facts: Facts) -> Iterator[Finding]:
    if not facts.sd_scripts_found:
        yield Finding(
            "sd-scripts-missing",
            "launch.sd_scripts",
            f"no {plan.script_name} in {facts.sd_scripts}; `make` works but `launch` will not",
            "run `kohya-plan setup` (in a clone of kohya-plan: scripts/setup-sd-scripts), "
            "set launch.sd_scripts, or set KOHYA_SD_SCRIPTS",
        )


@check
def _hardware(plan: Plan, facts: Facts) -> Iterator[Finding]:
    if facts.hardware is None:
        return
    from kohya_plan.hardware import advise

    t = plan.training
    epochs = facts.steps.epochs if facts.steps else (t.epochs or 1)
    every = t.save_every_n_epochs or 0
    files = 1 + (max(0, (epochs - 1) // every) if every else 0)
    for advice in advise(
        facts.hardware,
        batch_size=t.batch_size,
        mixed_precision=t.mixed_precision,
        save_precision=plan.output.save_precision,
        lora_file_bytes=lora_file_bytes(plan),
        files_per_run=files,
        family=plan.model.family,
        save_state=t.save_state,
        optimizer=plan.optimizer.type,
    ):
        yield Finding(advice.id, advice.field, advice.message, advice.fix)
