"""[dataset]: where the images are, how captions are read, resolution and buckets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator

from kohya_plan.plan.common import (
    Bool,
    CaptionExtension,
    Float,
    NonNegativeInt,
    OptionalPlanPath,
    PlanPath,
    PositiveInt,
    Section,
    Text,
)

if TYPE_CHECKING:
    from typing_extensions import Self


MAX_REPEATS = 10_000
"""Far beyond any tutorial's repeats (T4: 5 to 100); more is a typo."""


class SubsetSection(Section):
    """One image folder with explicit settings (no folder-name convention needed)."""

    image_dir: PlanPath = Field(description="The folder that holds the images themselves.")
    repeats: PositiveInt = Field(
        1, le=MAX_REPEATS, description="T4: how often each image is seen per epoch."
    )
    is_reg: Bool = Field(False, description="Regularization images.")
    class_tokens: Text | None = Field(None, description="Caption used for images without one.")
    caption_extension: CaptionExtension | None = None
    keep_tokens: NonNegativeInt | None = None
    shuffle_caption: Bool | None = None
    flip_aug: Bool | None = None
    color_aug: Bool | None = None
    random_crop: Bool | None = None
    caption_prefix: Text | None = None
    caption_suffix: Text | None = None


Resolution = PositiveInt | tuple[PositiveInt, PositiveInt]

MAX_SIDE = 8192
"""No model trains at more pixels a side; a bigger number is a typo (VRAM would not hold it)."""


class DatasetSection(Section):
    """Training (and regularization) images, captions, resolution and buckets."""

    train_dir: OptionalPlanPath = Field(
        None, description="T3/T4: the PARENT of folders named like 50_xunxian."
    )
    reg_dir: OptionalPlanPath = Field(None, description="Parent of N_name regularization folders.")
    subsets: tuple[SubsetSection, ...] = Field(
        (), description="Explicit image folders, instead of (or besides) train_dir."
    )
    caption_extension: CaptionExtension = Field(".txt", description="Caption file extension.")
    resolution: Resolution = Field(512, description="T13: 512, or [width, height].")
    enable_bucket: Bool = Field(True, description="T13: aspect-ratio buckets for mixed sizes.")
    min_bucket_reso: PositiveInt = Field(256, le=MAX_SIDE)
    max_bucket_reso: PositiveInt = Field(1024, le=MAX_SIDE)
    bucket_reso_steps: PositiveInt = Field(64, le=1024)
    bucket_no_upscale: Bool = False
    keep_tokens: NonNegativeInt = Field(0, description="T22: trigger words kept in front.")
    shuffle_caption: Bool = False
    flip_aug: Bool = False
    color_aug: Bool = False
    random_crop: Bool = False
    caption_dropout_rate: Float = Field(0.0, ge=0, le=1)
    caption_prefix: Text | None = None
    caption_suffix: Text | None = None

    @field_validator("resolution")
    @classmethod
    def _resolution_size(cls, value: int | tuple[int, int]) -> int | tuple[int, int]:
        sides = (value,) if isinstance(value, int) else value
        for side in sides:
            if side < 64:
                msg = f"{side} px is too small — SD needs at least 64 px (512 for SD1.5)"
                raise ValueError(msg)
            if side > MAX_SIDE:
                msg = (
                    f"{side} px is beyond any model's training size — use 64 to {MAX_SIDE} px "
                    "(SD1.5: 512, SDXL: 1024)"
                )
                raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _has_images(self) -> Self:
        if self.train_dir is None and not any(not s.is_reg for s in self.subsets):
            msg = (
                "no training images: neither train_dir nor a [[dataset.subsets]] entry is given "
                "— set train_dir to the parent of your N_name folders"
            )
            raise ValueError(msg)
        return self

    @property
    def size(self) -> tuple[int, int]:
        """Resolution as (width, height)."""
        if isinstance(self.resolution, int):
            return (self.resolution, self.resolution)
        return self.resolution
