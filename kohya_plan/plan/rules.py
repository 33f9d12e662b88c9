"""[rules] and the catalogue of checks kohya-plan runs, each with a stable id.

Ids are part of the interface: plans waive them (`rules.allow`), `check --json` reports them,
and documents cite them. Never rename one; add new ids instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from kohya_plan.plan.common import Section

Severity = Literal["error", "advice"]


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What a rule checks, where it comes from (tutorial rule or sd-scripts), how bad it is."""

    id: str
    severity: Severity
    ref: str
    title: str


_CATALOGUE = (
    # Tutorial rules that block `make` unless waived.
    RuleInfo("alpha-above-dim", "error", "T12", "network alpha is larger than the rank"),
    RuleInfo("te-lr-ratio", "error", "T17", "text-encoder LR outside 1/10..1/2 of the U-Net LR"),
    # Things sd-scripts would crash on late, or silently do wrong.
    RuleInfo("scheduler-warmup", "error", "sd-scripts", "constant scheduler with warmup"),
    RuleInfo("scheduler-min-lr", "error", "sd-scripts", "cosine_with_min_lr needs min_lr_ratio"),
    RuleInfo("scheduler-adafactor", "error", "sd-scripts", "adafactor scheduler needs Adafactor"),
    RuleInfo("scheduler-polynomial-lr", "error", "sd-scripts", "polynomial needs LR above 1e-7"),
    RuleInfo("cache-latents-augment", "error", "sd-scripts", "cached latents with color_aug/crop"),
    RuleInfo("bucket-range", "error", "sd-scripts", "bucket sizes do not bracket the resolution"),
    RuleInfo("bucket-steps", "error", "sd-scripts", "bucket_reso_steps not a multiple of 64/32"),
    RuleInfo("both-only-flags", "error", "sd-scripts", "train_unet_only and text_encoder_only"),
    RuleInfo("persistent-workers", "error", "sd-scripts", "persistent workers with 0 workers"),
    RuleInfo("sampling-no-prompts", "error", "sd-scripts", "sampling scheduled without prompts"),
    RuleInfo("model-missing", "error", "sd-scripts", "local model path does not exist"),
    RuleInfo("model-family", "error", "sd-scripts", "checkpoint is not of model.family"),
    RuleInfo("model-unreadable", "error", "sd-scripts", "checkpoint file is corrupt"),
    RuleInfo("dataset-missing", "error", "T3", "dataset folder does not exist"),
    RuleInfo("dataset-trap", "error", "T3", "train_dir points at the N_name folder itself"),
    RuleInfo("dataset-no-folders", "error", "T4", "train_dir has no N_name folders"),
    RuleInfo("folder-no-repeats", "error", "T4", "folder name has no repeat number"),
    RuleInfo("folder-zero-repeats", "error", "T4", "folder repeat number below 1"),
    RuleInfo("no-images", "error", "sd-scripts", "folder holds no images sd-scripts reads"),
    RuleInfo("missing-captions", "error", "sd-scripts", "images without caption files"),
    RuleInfo("empty-caption", "error", "sd-scripts", "caption file is empty"),
    RuleInfo("caption-not-utf8", "error", "sd-scripts", "caption file is not UTF-8"),
    RuleInfo("unreadable-image", "error", "sd-scripts", "image header cannot be read"),
    RuleInfo("duplicate-stems", "error", "sd-scripts", "two images share one caption file"),
    RuleInfo("image-size-no-bucket", "error", "sd-scripts", "image size vs resolution, no buckets"),
    RuleInfo("extra-option", "error", "sd-scripts", "launch.extra option not usable"),
    # Advice: printed, never blocking.
    RuleInfo("steps-range", "advice", "T6", "total steps outside 1000-2000"),
    RuleInfo("image-count", "advice", "T7", "images outside 20-50"),
    RuleInfo("epochs-range", "advice", "T8", "epochs outside 5-10"),
    RuleInfo("rank-range", "advice", "T11", "rank outside 4-128"),
    RuleInfo("clip-skip-style", "advice", "T23", "clip skip vs model style"),
    RuleInfo("keep-tokens", "advice", "T22", "keep_tokens vs the captions' trigger words"),
    RuleInfo("mixed-sizes-no-bucket", "advice", "T13", "mixed image sizes without buckets"),
    RuleInfo("adaptive-lr", "advice", "T19", "DAdaptation/Prodigy want a learning rate near 1.0"),
    RuleInfo("te-lr-zero", "advice", "sd-scripts", "text-encoder LR 0 still trains TE modules"),
    RuleInfo("prompts-unused", "advice", "T24", "prompts without a sampling schedule"),
    RuleInfo("reg-unused", "advice", "sd-scripts", "more reg images than training images"),
    RuleInfo("skipped-files", "advice", "sd-scripts", "files sd-scripts will not read"),
    RuleInfo("sd-scripts-missing", "advice", "setup", "sd-scripts not found"),
    # Hardware advice (this machine: the one `check` runs on).
    RuleInfo("gpu-batch-size", "advice", "T9", "batch size vs GPU memory"),
    RuleInfo("gpu-precision", "advice", "sd-scripts", "mixed precision the GPU supports"),
    RuleInfo("no-gpu", "advice", "sd-scripts", "no NVIDIA GPU: CPU training is extremely slow"),
    RuleInfo("disk-space", "advice", "sd-scripts", "outputs may not fit on the disk"),
    RuleInfo("ram", "advice", "sd-scripts", "host RAM low for training"),
)
RULES: dict[str, RuleInfo] = {rule.id: rule for rule in _CATALOGUE}


class RulesSection(Section):
    """Waivers: rule ids whose findings are reported as waived instead of blocking."""

    allow: tuple[str, ...] = Field((), description='Rule ids to waive, e.g. ["te-lr-ratio"].')

    @field_validator("allow")
    @classmethod
    def _known_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import difflib

        for rule_id in value:
            if rule_id not in RULES:
                close = difflib.get_close_matches(rule_id, RULES, n=1)
                hint = f'did you mean "{close[0]}"?' if close else "see `kohya-plan rules`"
                msg = f"unknown rule id {rule_id!r} — {hint}"
                raise ValueError(msg)
        return value
