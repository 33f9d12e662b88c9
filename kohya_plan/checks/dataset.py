"""The images and captions as sd-scripts will read them: folders (T3/T4), buckets, captions."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from kohya_plan import rules
from kohya_plan.inputs.paths import not_utf8_finding, undecodable
from kohya_plan.inputs.scan import PIL_MAX_IMAGE_PIXELS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import Facts, FolderFacts
    from kohya_plan.plan import Plan


def _folder_field(plan: Plan, folder: FolderFacts) -> str:
    for index, subset in enumerate(plan.dataset.subsets):
        if subset.image_dir == folder.subset.image_dir:
            return f"dataset.subsets[{index}].image_dir"
    return "dataset.reg_dir" if folder.subset.is_reg else "dataset.train_dir"


def _names(items: tuple[str, ...], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_buckets(plan: Plan, facts: Facts) -> Iterator[Finding]:
    ds, fam = plan.dataset, plan.family
    step = fam.bucket_step
    if ds.enable_bucket and ds.bucket_reso_steps % step:
        yield rules.BUCKET_STEPS.finding(
            "dataset.bucket_reso_steps",
            f"{ds.bucket_reso_steps} is not a multiple of {step}: {fam.bucket_step_reason}",
            f"use bucket_reso_steps = {step}"
            + (f" or another multiple of {step}" if step != 64 else ""),
        )
    if not ds.enable_bucket or ds.bucket_no_upscale:
        return
    w, h = ds.size
    if min(w, h) < ds.min_bucket_reso:
        yield rules.BUCKET_RANGE.finding(
            "dataset.min_bucket_reso",
            f"min_bucket_reso {ds.min_bucket_reso} is above the resolution's short side "
            f"{min(w, h)}",
            f"set min_bucket_reso to at most {min(w, h)}",
        )
    if max(w, h) > ds.max_bucket_reso:
        yield rules.BUCKET_RANGE.finding(
            "dataset.max_bucket_reso",
            f"max_bucket_reso {ds.max_bucket_reso} is below the resolution's long side {max(w, h)}",
            f"set max_bucket_reso to at least {max(w, h)}",
        )


def check_parents(plan: Plan, facts: Facts) -> Iterator[Finding]:
    for parent in facts.parents:
        field = parent.field
        if not parent.exists:
            yield rules.DATASET_MISSING.finding(
                field,
                f"{parent.path} does not exist",
                "check the path (relative paths are relative to the plan file)",
            )
            continue
        if not parent.is_dir:
            yield rules.DATASET_MISSING.finding(field, f"{parent.path} is not a folder", "")
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
            yield rules.DATASET_TRAP.finding(
                field,
                f"{parent.path} holds the images itself; sd-scripts wants the PARENT of "
                "N_name folders (T3)",
                fix,
            )
        elif parent.direct_images:
            n = parent.direct_images
            yield rules.LOOSE_IMAGES.finding(
                field,
                f"{n} image{'s' if n > 1 else ''} lie in {parent.path} itself, beside its N_name "
                "folders; sd-scripts reads only the N_name folders (as kohya-plan's dataset.toml "
                "lists them), so these are not trained",
                f"move them into an N_name folder (e.g. {parent.path / '1_extra'}), or waive "
                "loose-images to leave them out on purpose",
            )
        if parent.repeat_folders == 0 and not parent.ignored_folders and not parent.direct_images:
            yield rules.DATASET_NO_FOLDERS.finding(
                field,
                f"{parent.path} has no N_name folders, so sd-scripts finds no data (and exits 0)",
                f"put the images in a folder like {parent.path / '10_name'}",
            )
        for name in parent.ignored_folders:
            yield rules.FOLDER_NO_REPEATS.finding(
                field,
                f"folder {name!r} has no repeat number, so sd-scripts ignores it",
                f"rename it to something like 10_{name} (T4: the number is the repeat count)",
            )
        for name in parent.zero_repeat_folders:
            yield rules.FOLDER_ZERO_REPEATS.finding(
                field,
                f"folder {name!r} has a repeat count below 1, so sd-scripts skips it silently",
                "rename it with a repeat count of 1 or more",
            )


def check_folders(plan: Plan, facts: Facts) -> Iterator[Finding]:
    ext = plan.dataset.caption_extension
    seen: set[str] = set()
    for folder in facts.folders:
        field = _folder_field(plan, folder)
        where = folder.subset.image_dir
        if folder.exists and folder.real_path:
            if folder.real_path in seen:
                continue  # the same images again: check_duplicate_folders says so, once
            seen.add(folder.real_path)
        if undecodable(where):
            yield not_utf8_finding(field, where)
            continue
        if not folder.exists:
            yield rules.DATASET_MISSING.finding(field, f"{where} does not exist", "check the path")
            continue
        if folder.images == 0:
            yield rules.NO_IMAGES.finding(
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
            yield rules.MISSING_CAPTIONS.finding(
                field,
                f"{n} of {folder.images} images in {where.name} have no {ext} caption "
                f"({_names(folder.missing_captions)}); sd-scripts would train them with "
                f"{fallback}",
                f"write the captions, or set dataset.caption_extension if they use another "
                f"extension (now {ext!r})",
            )
        if folder.empty_captions:
            yield rules.EMPTY_CAPTION.finding(
                field,
                f"empty caption files in {where.name}: {_names(folder.empty_captions)}; "
                "sd-scripts stops with 'caption file is empty'",
                "write a caption or delete the empty file",
            )
        if folder.blank_captions:
            yield rules.BLANK_CAPTION.finding(
                field,
                f"captions whose first line is only whitespace (or only a BOM) in {where.name}: "
                f"{_names(folder.blank_captions)}; sd-scripts trains these images with an empty "
                "caption, without the class-token fallback and without a warning",
                "write the caption on the first line, or waive blank-caption to train them "
                "without a caption on purpose",
            )
        if folder.bom_captions:
            yield rules.CAPTION_BOM.finding(
                field,
                f"caption files in {where.name} start with a UTF-8 BOM "
                f"({_names(folder.bom_captions)}); sd-scripts keeps it in the caption (it reads "
                "captions as utf-8, not utf-8-sig) and the CLIP tokenizer drops it, so training "
                "is the same, but the LoRA's tag counts (ss_tag_frequency) list the first tag "
                "with the BOM as a tag of its own",
                "re-save them as UTF-8 without BOM",
            )
        if folder.non_utf8_captions:
            yield rules.CAPTION_NOT_UTF8.finding(
                field,
                f"captions not in UTF-8 in {where.name}: {_names(folder.non_utf8_captions)}",
                "re-save them as UTF-8",
            )
        if folder.unreadable:
            yield rules.UNREADABLE_IMAGE.finding(
                field,
                f"cannot read the image size of {_names(folder.unreadable)} in {where.name}",
                "re-save or remove these files",
            )
        for name, pixels in folder.large_images:
            limit = PIL_MAX_IMAGE_PIXELS
            if pixels > 2 * limit:
                yield rules.IMAGE_TOO_LARGE.finding(
                    field,
                    f"{name} in {where.name} has {pixels:,} pixels, over twice Pillow's limit "
                    f"of {limit:,}: sd-scripts stops with DecompressionBombError when it loads "
                    "it (while caching latents, or in the first epoch)",
                    "downscale it (sd-scripts resizes every image to its bucket anyway)",
                )
            else:
                yield rules.IMAGE_LARGE.finding(
                    field,
                    f"{name} in {where.name} has {pixels:,} pixels, over Pillow's limit of "
                    f"{limit:,}: sd-scripts trains it, with a DecompressionBombWarning, and "
                    f"needs about {pixels * 3 / 2**20:,.0f} MiB of RAM each time it loads it",
                    "downscale it (sd-scripts resizes every image to its bucket anyway)",
                )
        if folder.decode_errors:
            name, error = folder.decode_errors[0]
            more = len(folder.decode_errors) - 1
            others = f" (and {_names(tuple(n for n, _ in folder.decode_errors[1:]))})"
            yield rules.IMAGE_CORRUPT.finding(
                field,
                f"Pillow cannot decode {name} in {where.name}: {error}"
                + (others if more else "")
                + "; sd-scripts stops with this error when it loads the image (while caching "
                "latents, or in the middle of an epoch)",
                "replace or re-save the file (it is cut short or damaged)",
            )
        if folder.duplicate_stems:
            yield rules.DUPLICATE_STEMS.finding(
                field,
                f"images share a name in {where.name}: {_names(folder.duplicate_stems)}, so they "
                "share one caption file",
                "rename one of each pair",
            )
        if folder.skipped_files:
            yield rules.SKIPPED_FILES.finding(
                field,
                f"sd-scripts will not read {_names(folder.skipped_files)} in {where.name}",
                "convert them to .png/.jpg, or use a lower-case extension",
            )
        if folder.orphan_captions:
            yield rules.ORPHAN_CAPTIONS.finding(
                field,
                f"caption files without an image in {where.name}: "
                f"{_names(folder.orphan_captions)}; sd-scripts ignores them",
                "add the image as .png/.jpg/.jpeg/.webp/.bmp, or delete the caption",
            )
        for name, count in folder.nested:
            yield rules.NESTED_FOLDERS.finding(
                field,
                f"{where.name}/{name} holds {count} image{'s' if count > 1 else ''} that "
                f"sd-scripts does not read: it reads only the images directly in {where.name}",
                f"move them up into {where.name}, or make the folder a subset of its own (an "
                "N_name folder in train_dir, or [[dataset.subsets]])",
            )


def _kind(folder: FolderFacts) -> str:
    kind = "regularization" if folder.subset.is_reg else "training"
    return f"{kind} images, {folder.subset.repeats} repeats"


def check_duplicate_folders(plan: Plan, facts: Facts) -> Iterator[Finding]:
    """sd-scripts drops a subset whose image_dir string it has seen (DreamBoothSubset.__eq__)
    and cannot tell two spellings of one folder apart, which it then reads twice."""
    first: dict[str, FolderFacts] = {}
    for folder in facts.folders:
        if not folder.exists:
            continue
        seen = first.setdefault(folder.real_path, folder)
        if seen is folder:
            continue
        field = _folder_field(plan, folder)
        a, b = seen.subset.image_dir, folder.subset.image_dir
        if str(a) == str(b):
            yield rules.DUPLICATE_FOLDER.finding(
                field,
                f"{b} is listed twice ({_kind(seen)}; then {_kind(folder)}): sd-scripts keeps "
                "the first and ignores the second ('ignore duplicated subset')",
                "list the folder once (more repeats: a higher N in its name, or repeats = N)",
            )
        else:
            both = (
                "as training and as regularization images"
                if seen.subset.is_reg != folder.subset.is_reg
                else f"twice ({seen.subset.repeats} + {folder.subset.repeats} repeats)"
            )
            yield rules.DUPLICATE_FOLDER.finding(
                field,
                f"{b} is the same folder as {a} (a link or another spelling); sd-scripts does not "
                f"notice and reads its images {both}",
                "list the folder once; regularization images belong in a folder of their own",
            )


def check_image_counts(plan: Plan, facts: Facts) -> Iterator[Finding]:
    train = [f for f in facts.folders if not f.subset.is_reg and f.exists]
    if not train:
        return
    images = sum(f.images for f in train)
    if images and not 20 <= images <= 50:
        yield rules.IMAGE_COUNT.finding(
            "dataset",
            f"{images} training images; the tutorial suggests 20 to 50",
            "T7: usually 20 to 50 varied, well-captioned images",
        )
    sizes = {size for f in facts.folders for size in f.sizes}
    ds = plan.dataset
    if not ds.enable_bucket and len(sizes) > 1:
        yield rules.MIXED_SIZES_NO_BUCKET.finding(
            "dataset.enable_bucket",
            f"images come in {len(sizes)} different sizes but buckets are off",
            "T13: set enable_bucket = true",
        )
    if not ds.enable_bucket and not plan.training.cache_latents:
        wrong = sorted({s for s in sizes if s != ds.size})
        if wrong:
            w, h = ds.size
            yield rules.IMAGE_SIZE_NO_BUCKET.finding(
                "dataset.resolution",
                f"without buckets or cached latents every image must be {w}x{h}; "
                f"found {', '.join(f'{a}x{b}' for a, b in wrong[:3])}",
                "set enable_bucket = true or training.cache_latents = true",
            )


def check_keep_tokens(plan: Plan, facts: Facts) -> Iterator[Finding]:
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
        yield rules.KEEP_TOKENS.finding(
            "dataset.keep_tokens",
            f"captions start with the trigger word(s) {trigger!r} but keep_tokens is 0, so "
            "shuffling moves them",
            f"T22: set keep_tokens = {shared}",
        )
    elif keep > shared and plan.dataset.shuffle_caption:
        detail = f"only {trigger!r} is" if shared else "no tag is"
        yield rules.KEEP_TOKENS.finding(
            "dataset.keep_tokens",
            f"keep_tokens = {keep} but {detail} shared by the captions' first tags",
            f"T22: set keep_tokens = {shared} or start every caption with the trigger words",
        )
    elif keep and not plan.dataset.shuffle_caption:
        yield rules.KEEP_TOKENS.finding(
            "dataset.keep_tokens",
            f"keep_tokens = {keep} has no effect without shuffle_caption",
            "set shuffle_caption = true, or keep_tokens = 0",
        )


def check_reg(plan: Plan, facts: Facts) -> Iterator[Finding]:
    train = sum(f.images * f.subset.repeats for f in facts.folders if not f.subset.is_reg)
    reg = sum(f.images * f.subset.repeats for f in facts.folders if f.subset.is_reg)
    if train and reg > train:
        yield rules.REG_UNUSED.finding(
            "dataset.reg_dir",
            f"{reg} regularization samples for {train} training samples: sd-scripts uses only "
            f"the first {train}",
            "fewer regularization images, or more repeats of the training images",
        )
