"""What kohya-plan learned from the disk about a plan (gathered by `inspect`, checked by `checks`).

Plain data, so the checks stay pure and testable without files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pathlib import Path

    from kohya_plan.inputs.accelerate_config import AccelerateConfig
    from kohya_plan.inputs.hardware import Hardware
    from kohya_plan.plan.common import ScalarValue

ModelKind = Literal["file", "diffusers", "hub", "missing"]


@dataclass(frozen=True, slots=True)
class ResolvedSubset:
    """One image folder as sd-scripts will see it (from train_dir/reg_dir or dataset.subsets)."""

    image_dir: Path
    repeats: int
    is_reg: bool
    class_tokens: str | None
    overrides: tuple[tuple[str, ScalarValue], ...] = ()


@dataclass(frozen=True, slots=True)
class FolderFacts:
    """One image folder as sd-scripts will read it."""

    subset: ResolvedSubset
    exists: bool
    images: int
    sizes: tuple[tuple[int, int], ...]
    missing_captions: tuple[str, ...] = ()
    empty_captions: tuple[str, ...] = ()
    non_utf8_captions: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()
    duplicate_stems: tuple[str, ...] = ()
    skipped_files: tuple[str, ...] = ()
    caption_heads: tuple[tuple[str, ...], ...] = ()
    blank_captions: tuple[str, ...] = ()
    bom_captions: tuple[str, ...] = ()
    orphan_captions: tuple[str, ...] = ()
    nested: tuple[tuple[str, int], ...] = ()
    """Folders inside it that hold images sd-scripts does not read: (name, images)."""
    large_images: tuple[tuple[str, int], ...] = ()
    """Images over Pillow's decompression-bomb limit: (name, pixels)."""
    real_path: str = ""
    """The folder with links resolved (to find one folder listed twice)."""
    decode_errors: tuple[tuple[str, str], ...] = ()
    """Images Pillow cannot decode (`check --deep`): (name, Pillow's error)."""
    image_names: tuple[str, ...] = ()
    """Every image sd-scripts reads here, in its order."""

    @property
    def captions(self) -> int:
        """Images that have a caption file."""
        return self.images - len(self.missing_captions)


@dataclass(frozen=True, slots=True)
class ParentFacts:
    """A train_dir/reg_dir (the folder that holds N_name folders)."""

    path: Path
    field: str
    exists: bool
    is_dir: bool
    direct_images: int
    ignored_folders: tuple[str, ...] = ()
    zero_repeat_folders: tuple[str, ...] = ()
    repeat_folders: int = 0


@dataclass(frozen=True, slots=True)
class StepFacts:
    """sd-scripts' own step maths for this plan and data."""

    batches_per_epoch: int
    steps_per_epoch: int
    epochs: int
    total_optimization_steps: int
    tutorial_formula: float
    train_samples: int
    reg_samples: int
    buckets: tuple[tuple[int, int, int], ...]
    # for P processes (sd-scripts' numbers above are per process where it prints them so)
    num_processes: int = 1
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    epochs_given: bool = True
    dataset_batches: int = 0
    one_process_epochs: int | None = None
    one_process_steps: int | None = None

    @property
    def effective_batch(self) -> int:
        """Samples behind one optimizer step: batch size × processes × accumulation."""
        return self.batch_size * self.num_processes * self.gradient_accumulation_steps

    @property
    def samples_per_epoch(self) -> int:
        """Images × repeats (regularization images included, as balanced) in one epoch."""
        return self.train_samples + self.reg_samples

    @property
    def batches_trained(self) -> int:
        """Batches the whole run trains, over all processes (a step takes P × GA of them)."""
        return self.total_optimization_steps * self.num_processes * self.gradient_accumulation_steps


@dataclass(frozen=True, slots=True)
class ModelFileFacts:
    """One of the family's other model files (`model.ae` …): where it is, what it holds."""

    key: str
    ref: str
    kind: ModelKind
    detected: str | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class DeepStats:
    """What `check --deep` did: images judged, how many decoded now (the rest were cached)."""

    images: int
    decoded: int
    seconds: float
    workers: int
    pillow: str
    cache: str | None
    """The folder of the verdict cache (None: it could not be written)."""


@dataclass(frozen=True, slots=True)
class WriteTarget:
    """A folder kohya-plan or sd-scripts will write into, and whether it can (found without
    writing: the nearest existing folder's permissions and file system)."""

    field: str
    path: Path
    problem: str | None = None
    name_max: int = 255


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the checks need besides the plan."""

    model_kind: ModelKind
    model_ref: str
    parents: tuple[ParentFacts, ...] = ()
    folders: tuple[FolderFacts, ...] = ()
    sd_scripts: Path | None = None
    sd_scripts_found: bool = True
    model_family_detected: str | None = None
    model_problem: str | None = None
    model_not_a_model: str | None = None
    """What a local model.base is when it is no model: "an empty folder", "a PNG image"."""
    steps: StepFacts | None = None
    hardware: Hardware | None = None
    model_shape: dict[str, int] = field(default_factory=dict)
    """Block/layer counts read from the model (`dit.double`, `te2.layers` …; see
    inputs.checkpoint.model_shape): the LoRA size and block-swap bounds of THIS model."""
    model_files: tuple[ModelFileFacts, ...] = ()
    """The family's other model files (FLUX.1: ae, clip_l, t5xxl) as found."""
    vram_gib: float | None = None
    """GPU memory to plan for (`check --vram`), else None (the detected GPU's is used)."""
    write_targets: tuple[WriteTarget, ...] = ()
    deep: DeepStats | None = None
    accelerate_config: AccelerateConfig | None = None
    # (plan key, folder, exists) of the folders the plan's DeepSpeed offloads to
    deepspeed_paths: tuple[tuple[str, Path, bool], ...] = ()
