"""The dataset TOML for `--dataset_config`: subsets are explicit, so the T3 folder trap is gone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan.render.toml_text import TomlValue, comment_text, toml_table

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kohya_plan.inputs.facts import ResolvedSubset
    from kohya_plan.plan import Plan


def render_dataset_toml(plan: Plan, subsets: Sequence[ResolvedSubset], header: str) -> str:
    """Dataset TOML text: [general] caption settings, one [[datasets]], one subset per folder."""
    ds = plan.dataset
    general: dict[str, TomlValue | None] = {
        "caption_extension": ds.caption_extension,
        "shuffle_caption": ds.shuffle_caption,
        "keep_tokens": ds.keep_tokens,
        "flip_aug": ds.flip_aug,
        "color_aug": ds.color_aug,
        "random_crop": ds.random_crop,
        "caption_dropout_rate": float(ds.caption_dropout_rate),
        "caption_prefix": ds.caption_prefix,
        "caption_suffix": ds.caption_suffix,
    }
    resolution: TomlValue = ds.resolution if isinstance(ds.resolution, int) else list(ds.resolution)
    dataset: dict[str, TomlValue | None] = {
        "resolution": resolution,
        "batch_size": plan.training.batch_size,
        "enable_bucket": ds.enable_bucket,
        "min_bucket_reso": ds.min_bucket_reso,
        "max_bucket_reso": ds.max_bucket_reso,
        "bucket_reso_steps": ds.bucket_reso_steps,
        "bucket_no_upscale": ds.bucket_no_upscale,
    }
    lines = [*header_lines(header), "[general]", *toml_table(general), "", "[[datasets]]"]
    lines += toml_table(dataset)
    for subset in subsets:
        values: dict[str, TomlValue | None] = {
            "image_dir": str(subset.image_dir),
            "num_repeats": subset.repeats,
            "is_reg": subset.is_reg,
            "class_tokens": subset.class_tokens,
            **dict(subset.overrides),
        }
        lines += ["", "  [[datasets.subsets]]", *toml_table(values, indent="  ")]
    return "\n".join(lines) + "\n"


def header_lines(header: str) -> list[str]:
    """Comment lines that open every rendered file: one per ``\\n`` of ``header``, anything
    else a comment cannot hold escaped (a path may bring any character)."""
    return [f"# {comment_text(line)}" if line else "#" for line in header.split("\n")] + [""]
