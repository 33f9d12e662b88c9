"""The dataset: `--dataset_config` TOML ([general], [[datasets]], [[datasets.subsets]]) or the
`train_data_dir`/`reg_data_dir` folders, taken with sd-scripts' precedence (subset → dataset →
general → command line) onto the plan's one dataset and its subsets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kohya_plan.workflows.importers.sources import resolve_path
from kohya_plan.workflows.importers.state import (
    DatasetBlock,
    DatasetInput,
    State,
    carry_extra,
    is_option,
    mark_used,
    refuse,
    resolved,
)
from kohya_plan.workflows.importers.values import CannotCarry, Given, split_resolution, typed

if TYPE_CHECKING:
    from collections.abc import Mapping

# Dataset options: plan keys they become, and where sd-scripts reads them.
_DATASET_LEVEL = {
    "resolution": "dataset.resolution",
    "batch_size": "training.batch_size",
    "enable_bucket": "dataset.enable_bucket",
    "min_bucket_reso": "dataset.min_bucket_reso",
    "max_bucket_reso": "dataset.max_bucket_reso",
    "bucket_reso_steps": "dataset.bucket_reso_steps",
    "bucket_no_upscale": "dataset.bucket_no_upscale",
}

# Subset options the plan models both for all subsets ([dataset]) and per subset.
_SUBSET_LEVEL = (
    "caption_extension",
    "keep_tokens",
    "shuffle_caption",
    "flip_aug",
    "color_aug",
    "random_crop",
    "caption_prefix",
    "caption_suffix",
)

# Modelled for all subsets only.
_ALL_SUBSETS_ONLY = ("caption_dropout_rate",)

# argparse name → dataset config name (sd-scripts' ARGPARSE_OPTNAME_TO_CONFIG_OPTNAME).
_ARGPARSE_TO_CONFIG = {"train_batch_size": "batch_size", "dataset_repeats": "num_repeats"}

_SUBSET_OWN = ("image_dir", "num_repeats", "is_reg", "class_tokens")

# Dataset keys sd-scripts knows besides those (carried as sd-scripts options where the parser
# has one of that name: sd-scripts falls back to the command-line value for every subset).
_DATASET_OTHER = (
    "keep_tokens_separator",
    "secondary_separator",
    "caption_separator",
    "enable_wildcard",
    "face_crop_aug_range",
    "token_warmup_min",
    "token_warmup_step",
    "caption_dropout_every_n_epochs",
    "caption_tag_dropout_rate",
    "custom_attributes",
    "resize_interpolation",
    "network_multiplier",
    "validation_seed",
    "validation_split",
    "cache_info",
    "alpha_mask",
)

# Every key a dataset config may hold (sd-scripts' ConfigSanitizer); others stop sd-scripts.
_DATASET_KEYS = frozenset(
    {*_DATASET_LEVEL, *_SUBSET_LEVEL, *_ALL_SUBSETS_ONLY, *_SUBSET_OWN, *_DATASET_OTHER}
    | {"subsets", "metadata_file", "conditioning_data_dir"}
)


def map_dataset(state: State, dataset: DatasetInput | None) -> None:
    """The dataset config (or the folders) onto the plan's dataset and subsets."""
    b = state.builder
    argparse_values = {
        _ARGPARSE_TO_CONFIG.get(name, name): given
        for name, given in state.options.items()
        if name not in state.used
    }
    if dataset is None:
        _folders(state)
        _dataset_values(
            state,
            {
                k: argparse_values[k]
                for k in (*_DATASET_LEVEL, *_SUBSET_LEVEL, *_ALL_SUBSETS_ONLY)
                if k in argparse_values
            },
        )
        return
    for name in ("train_data_dir", "reg_data_dir", "in_json"):
        given = state.take(name)
        if given is not None:
            b.record(
                given.source,
                "dropped",
                reason="sd-scripts ignores it when a dataset config is given",
                default=given.default,
            )
    if not dataset.datasets:
        refuse("datasets", "the dataset config has no [[datasets]]", "add one")
    first = dataset.datasets[0]
    level: dict[str, Given] = {}
    for key in (*_DATASET_LEVEL, *_SUBSET_LEVEL, *_ALL_SUBSETS_ONLY, *_DATASET_OTHER):
        chain = [g for g in (first.params.get(key), dataset.general.get(key)) if g is not None]
        argparse_given = argparse_values.get(key)
        if argparse_given is not None:
            chain.append(argparse_given)
        if not chain:
            continue
        level[key] = chain[0]
        for other in chain[1:]:
            b.record(
                other.source,
                "dropped",
                reason=f"overridden by {chain[0].source} ({chain[0].value!r})",
                default=other.default,
            )
            mark_used(state, other)
    _dataset_values(state, {k: v for k, v in level.items() if k not in _DATASET_OTHER})
    subsets = [(first.where, s) for s in first.subsets]
    for block in dataset.datasets[1:]:
        subsets += _merge_block(state, dataset, first, block)
    others = {k: v for k, v in level.items() if k in _DATASET_OTHER}
    _unknown_dataset_keys(state, dataset)
    _subsets(state, dataset, subsets, others)


def _folders(state: State) -> None:
    b = state.builder
    for name, plan_key in (
        ("train_data_dir", "dataset.train_dir"),
        ("reg_data_dir", "dataset.reg_dir"),
    ):
        given = state.take(name)
        if given is not None:
            b.set(plan_key, resolved(state, given), given, "the parent of N_name folders")
    given = state.take("in_json")
    if given is not None:
        refuse(
            given.source,
            "is a fine-tuning metadata file",
            "kohya-plan plans LoRA runs "
            "from image folders; use a dataset config with image_dir subsets",
        )


def _dataset_values(state: State, level: Mapping[str, Given]) -> None:
    """Dataset-wide values (already chosen by sd-scripts' precedence) onto plan keys."""
    b = state.builder
    types = state.types
    for key, given in level.items():
        mark_used(state, given)
        if key == "resolution":
            value = split_resolution(given.value)
            if value is None:
                b.record(given.source, "cannot", reason=f"{given.value!r} is not W or W,H")
            else:
                b.set("dataset.resolution", value, given)
            continue
        option = types.get("train_batch_size" if key == "batch_size" else key)
        try:
            typed_value, note = typed(option, given.value)
        except CannotCarry as exc:
            b.record(given.source, "cannot", reason=str(exc), default=given.default)
            continue
        if note:
            b.notes.append(f"{given.source}: {note}")
        plan_key = _DATASET_LEVEL.get(key, f"dataset.{key}")
        if key == "caption_dropout_rate":
            typed_value = float(typed_value)
        b.set(plan_key, typed_value, given)


def _merge_block(
    state: State, dataset: DatasetInput, first: DatasetBlock, block: DatasetBlock
) -> list[tuple[str, dict[str, Given]]]:
    """Subsets of a further [[datasets]], if it trains exactly like the first one."""
    keys = (*_DATASET_LEVEL, *_SUBSET_LEVEL, *_ALL_SUBSETS_ONLY, *_DATASET_OTHER)

    def effective(item: DatasetBlock, key: str) -> Any:
        given = item.params.get(key) or dataset.general.get(key)
        return None if given is None else given.value

    differs = [k for k in keys if effective(block, k) != effective(first, k)]
    if not differs:
        for given in block.params.values():
            state.builder.record(given.source, "dropped", reason=f"the same as {first.where}")
        return [(block.where, s) for s in block.subsets]
    what = ", ".join(f"{k} = {effective(block, k)!r}" for k in differs)
    reason = (
        f"a second [[datasets]] with {what} (the first has "
        + ", ".join(f"{effective(first, k)!r}" for k in differs)
        + "): kohya-plan renders one dataset, so its subsets are not trained"
    )
    for given in block.params.values():
        state.builder.record(given.source, "cannot", reason=reason)
    for subset in block.subsets:
        for given in subset.values():
            state.builder.record(given.source, "cannot", reason=f"in {block.where}: {reason}")
    return []


def _subsets(
    state: State,
    dataset: DatasetInput,
    subsets: list[tuple[str, dict[str, Given]]],
    others: dict[str, Given],
) -> None:
    b = state.builder
    rows: list[dict[str, Any]] = []
    for index, (_, subset) in enumerate(subsets):
        where = f"dataset.subsets[{index}]"
        for marker, what in (
            ("metadata_file", "a fine-tuning"),
            ("conditioning_data_dir", "a ControlNet"),
        ):
            if marker in subset:
                refuse(
                    subset[marker].source,
                    f"makes this {what} subset",
                    "kohya-plan plans LoRA subsets of images with captions",
                )
        row: dict[str, Any] = {}
        image_dir = subset.get("image_dir")
        if image_dir is None:
            refuse(f"{where}.image_dir", "is missing (sd-scripts requires it)", "add image_dir")
        resolved = resolve_path(str(image_dir.value), b.sources, dataset.base_dir)
        if resolved.note:
            b.notes.append(f"{image_dir.source}: {resolved.note}")
        row["image_dir"] = resolved.path
        b.record(image_dir.source, "mapped", f"{where}.image_dir", resolved.path)
        for key, plan_name in (
            ("num_repeats", "repeats"),
            ("is_reg", "is_reg"),
            ("class_tokens", "class_tokens"),
            *((k, k) for k in _SUBSET_LEVEL),
        ):
            given = subset.get(key)
            if given is None:
                continue
            option = state.types.get(key)
            try:
                value, _ = typed(option, given.value) if option else (given.value, "")
            except CannotCarry as exc:
                b.record(given.source, "cannot", reason=str(exc))
                continue
            row[plan_name] = value
            b.record(given.source, "mapped", f"{where}.{plan_name}", value)
        rows.append(row)
    b.set("dataset.subsets", rows, None)
    # Per-subset values the plan models only for all subsets, and options it does not model.
    for key in (*_ALL_SUBSETS_ONLY, *_DATASET_OTHER):
        per_subset = [(s.get(key), where) for where, s in subsets]
        given_here = [g for g, _ in per_subset if g is not None]
        if not given_here:
            if key in others and not is_option(state, others[key]):
                _carry(state, key, others[key])  # an option of the config is mapped in order
            continue
        fallback = others.get(key)
        values = {
            repr(g.value if g is not None else (fallback.value if fallback else None))
            for g, _ in per_subset
        }
        if len(values) == 1:
            first = given_here[0]
            if key in _ALL_SUBSETS_ONLY:
                b.set(f"dataset.{key}", float(first.value), first, "the same in every subset")
            else:
                _carry(state, key, first, "the same in every subset")
            for other in given_here[1:]:
                b.record(other.source, "dropped", reason=f"the same as {first.source}")
            if fallback is not None:
                b.record(fallback.source, "dropped", reason=f"the same as {first.source}")
        else:
            for given in given_here:
                b.record(
                    given.source,
                    "cannot",
                    reason=f"{key} differs between subsets; kohya-plan sets it for all subsets",
                )
            if fallback is not None:
                b.record(fallback.source, "cannot", reason=f"{key} differs between subsets")


def _unknown_dataset_keys(state: State, dataset: DatasetInput) -> None:
    """Keys sd-scripts' dataset-config schema does not have: it would stop at start."""
    items = [*dataset.general.values()]
    for block in dataset.datasets:
        items += block.params.values()
        for subset in block.subsets:
            items += subset.values()
    for given in items:
        key = given.source.rsplit(".", 1)[-1]
        if key not in _DATASET_KEYS:
            state.builder.record(
                given.source,
                "cannot",
                reason="not a dataset-config key: sd-scripts would stop ('extra keys not allowed')",
            )


def _carry(state: State, name: str, given: Given, reason: str = "") -> None:
    """A dataset value as the sd-scripts option of the same name (the fallback for subsets)."""
    config_to_argparse = {v: k for k, v in _ARGPARSE_TO_CONFIG.items()}
    option = config_to_argparse.get(name, name)
    mark_used(state, given)
    if state.known is not None and option not in state.known:
        state.builder.record(
            given.source,
            "cannot",
            reason=f"a dataset-config key the plan does "
            f"not model, and {state.script} has no option {option} to carry it",
        )
        return
    carry_extra(state, option, given, reason)
