"""The catalogue of rules kohya-plan checks, each with a stable id: declared here, once.

Ids are part of the interface: plans waive them (`rules.allow`), `check --json` reports them,
documents cite them. Never rename one; add new ids instead. A rule is *waivable* when a plan
may knowingly go against it (the tutorial's rules of thumb, advice); errors that would crash
sd-scripts or leave nothing to train are not: waiving them could only hide a failed run.
"""

from __future__ import annotations

from dataclasses import dataclass

from kohya_plan.findings import Finding, Severity

__all__ = ["RULES", "Rule"]


@dataclass(frozen=True, slots=True)
class Rule:
    """What a rule checks, where it comes from (tutorial rule or sd-scripts), how bad it is."""

    id: str
    severity: Severity
    ref: str
    title: str
    waivable: bool = True

    def finding(self, field: str, message: str, fix: str = "") -> Finding:
        """This rule's verdict on `field`."""
        return Finding(self.id, field, message, fix, self.severity, self.ref)


RULES: dict[str, Rule] = {}


def _rule(id: str, severity: Severity, ref: str, title: str, *, waivable: bool = True) -> Rule:
    rule = Rule(id, severity, ref, title, waivable)
    RULES[id] = rule
    return rule


# The plan file itself: what the schema refuses. Never waivable.
INVALID = _rule("invalid", "error", "plan", "a value the plan's schema refuses", waivable=False)
UNKNOWN_KEY = _rule("unknown-key", "error", "plan", "a key the plan does not have", waivable=False)
MISSING = _rule("missing", "error", "plan", "a required key is not given", waivable=False)
# `kohya-plan import`: a source it cannot turn into a plan (nothing is written).
IMPORT_SOURCE = _rule(
    "import-source", "error", "import", "a source that cannot be imported", waivable=False
)
# Tutorial rules that block `make` unless waived.
ALPHA_ABOVE_DIM = _rule("alpha-above-dim", "error", "T12", "network alpha is larger than the rank")
TE_LR_RATIO = _rule(
    "te-lr-ratio", "error", "T17", "text-encoder LR outside 1/10..1/2 of the U-Net LR"
)
# Things sd-scripts would crash on late, or silently do wrong.
SCHEDULER_WARMUP = _rule(
    "scheduler-warmup", "error", "sd-scripts", "constant scheduler with warmup", waivable=False
)
SCHEDULER_MIN_LR = _rule(
    "scheduler-min-lr",
    "error",
    "sd-scripts",
    "cosine_with_min_lr needs min_lr_ratio",
    waivable=False,
)
SCHEDULER_ADAFACTOR = _rule(
    "scheduler-adafactor",
    "error",
    "sd-scripts",
    "adafactor scheduler needs Adafactor",
    waivable=False,
)
SCHEDULER_POLYNOMIAL_LR = _rule(
    "scheduler-polynomial-lr", "error", "sd-scripts", "polynomial needs LR above 1e-7"
)
CACHE_LATENTS_AUGMENT = _rule(
    "cache-latents-augment",
    "error",
    "sd-scripts",
    "cached latents with color_aug/crop",
    waivable=False,
)
BUCKET_RANGE = _rule(
    "bucket-range",
    "error",
    "sd-scripts",
    "bucket sizes do not bracket the resolution",
    waivable=False,
)
BUCKET_STEPS = _rule(
    "bucket-steps",
    "error",
    "sd-scripts",
    "bucket_reso_steps not a multiple of 64/32",
    waivable=False,
)
BOTH_ONLY_FLAGS = _rule(
    "both-only-flags",
    "error",
    "sd-scripts",
    "train_unet_only and text_encoder_only",
    waivable=False,
)
PERSISTENT_WORKERS = _rule(
    "persistent-workers", "error", "sd-scripts", "persistent workers with 0 workers", waivable=False
)
SAMPLING_NO_PROMPTS = _rule(
    "sampling-no-prompts",
    "error",
    "sd-scripts",
    "sampling scheduled without prompts",
    waivable=False,
)
MODEL_MISSING = _rule(
    "model-missing", "error", "sd-scripts", "local model path does not exist", waivable=False
)
MODEL_FAMILY = _rule(
    "model-family", "error", "sd-scripts", "checkpoint is not of model.family", waivable=False
)
MODEL_NOT_A_MODEL = _rule(
    "model-not-a-model", "error", "sd-scripts", "model.base is not a model", waivable=False
)
MODEL_UNREADABLE = _rule(
    "model-unreadable", "error", "sd-scripts", "checkpoint file is corrupt", waivable=False
)
DATASET_MISSING = _rule(
    "dataset-missing", "error", "T3", "dataset folder does not exist", waivable=False
)
DATASET_TRAP = _rule(
    "dataset-trap", "error", "T3", "train_dir points at the N_name folder itself", waivable=False
)
DATASET_NO_FOLDERS = _rule(
    "dataset-no-folders", "error", "T4", "train_dir has no N_name folders", waivable=False
)
FOLDER_NO_REPEATS = _rule("folder-no-repeats", "error", "T4", "folder name has no repeat number")
FOLDER_ZERO_REPEATS = _rule("folder-zero-repeats", "error", "T4", "folder repeat number below 1")
NO_IMAGES = _rule(
    "no-images", "error", "sd-scripts", "folder holds no images sd-scripts reads", waivable=False
)
MISSING_CAPTIONS = _rule("missing-captions", "error", "sd-scripts", "images without caption files")
EMPTY_CAPTION = _rule(
    "empty-caption", "error", "sd-scripts", "caption file is empty", waivable=False
)
CAPTION_NOT_UTF8 = _rule(
    "caption-not-utf8", "error", "sd-scripts", "caption file is not UTF-8", waivable=False
)
UNREADABLE_IMAGE = _rule(
    "unreadable-image", "error", "sd-scripts", "image header cannot be read", waivable=False
)
DUPLICATE_STEMS = _rule(
    "duplicate-stems", "error", "sd-scripts", "two images share one caption file"
)
IMAGE_TOO_LARGE = _rule(
    "image-too-large",
    "error",
    "sd-scripts",
    "image over twice Pillow's pixel limit: DecompressionBombError",
    waivable=False,
)
IMAGE_CORRUPT = _rule(
    "image-corrupt",
    "error",
    "sd-scripts",
    "image data Pillow cannot decode (check --deep)",
    waivable=False,
)
BLANK_CAPTION = _rule(
    "blank-caption", "error", "sd-scripts", "caption is whitespace only: trained with none"
)
LOOSE_IMAGES = _rule(
    "loose-images", "error", "T3", "images in train_dir beside its N_name folders are not read"
)
DUPLICATE_FOLDER = _rule(
    "duplicate-folder",
    "error",
    "sd-scripts",
    "one folder listed twice, or as train and reg",
    waivable=False,
)
IMAGE_SIZE_NO_BUCKET = _rule(
    "image-size-no-bucket", "error", "sd-scripts", "image size vs resolution, no buckets"
)
NO_TRAINING_DATA = _rule(
    "no-training-data",
    "error",
    "sd-scripts",
    "no training image is left to train on",
    waivable=False,
)
EXTRA_OPTION = _rule(
    "extra-option", "error", "sd-scripts", "launch.extra option not usable", waivable=False
)
NETWORK_MODULE_FAMILY = _rule(
    "network-module-family",
    "error",
    "sd-scripts",
    "network module built for another model family",
    waivable=False,
)
TE_LR_LIST = _rule(
    "te-lr-list",
    "error",
    "sd-scripts",
    "two text-encoder LRs where the network takes one",
    waivable=False,
)
TE_CACHE_TRAINED = _rule(
    "te-cache-trained",
    "error",
    "sd-scripts",
    "text-encoder outputs cached while that encoder trains",
    waivable=False,
)
TE_CACHE_AUGMENT = _rule(
    "te-cache-augment",
    "error",
    "sd-scripts",
    "cached text-encoder outputs with caption shuffling/dropout",
    waivable=False,
)
FULL_PRECISION = _rule(
    "full-precision",
    "error",
    "sd-scripts",
    "full_fp16/full_bf16 without that mixed precision",
    waivable=False,
)
FP8_BASE_PRECISION = _rule(
    "fp8-base-precision",
    "error",
    "sd-scripts",
    "fp8_base without fp16/bf16 mixed precision",
    waivable=False,
)
MODEL_FORMAT = _rule(
    "model-format",
    "error",
    "sd-scripts",
    "model in a form the family's script cannot load",
    waivable=False,
)
SDXL_HALF_VAE = _rule(
    "sdxl-half-vae", "error", "sd-scripts", "SDXL VAE in fp16 (black/NaN samples)"
)
FLUX_BLOCKS_TO_SWAP = _rule(
    "flux-blocks-to-swap",
    "error",
    "sd-scripts",
    "blocks_to_swap beyond what the DiT allows",
    waivable=False,
)
FLUX_SWAP_OFFLOAD = _rule(
    "flux-swap-offload",
    "error",
    "sd-scripts",
    "blocks_to_swap with cpu_offload_checkpointing",
    waivable=False,
)
FLUX_CHROMA = _rule(
    "flux-chroma", "error", "sd-scripts", "a setting Chroma does not support", waivable=False
)
PATH_UNUSABLE = _rule(
    "path-unusable",
    "error",
    "plan",
    "a path the OS cannot look up (name too long, link loop)",
    waivable=False,
)
NAME_NOT_UTF8 = _rule(
    "name-not-utf8",
    "error",
    "sd-scripts",
    "a folder name that is not UTF-8 (no TOML file can name it)",
    waivable=False,
)
FOLDER_NOT_WRITABLE = _rule(
    "folder-not-writable",
    "error",
    "sd-scripts",
    "a folder the run writes is read-only",
    waivable=False,
)
NAME_TOO_LONG = _rule(
    "name-too-long",
    "error",
    "sd-scripts",
    "output.name too long for the file names made from it",
    waivable=False,
)
# Many processes, machines, DeepSpeed, SLURM: what sd-scripts or accelerate would stop on.
DEEPSPEED_ONE_PROCESS = _rule(
    "deepspeed-one-process",
    "error",
    "sd-scripts",
    "DeepSpeed with one process (sd-scripts reads WORLD_SIZE)",
    waivable=False,
)
DEEPSPEED_PATH = _rule(
    "deepspeed-path", "error", "sd-scripts", "DeepSpeed offload folder missing", waivable=False
)
SLURM_PROCESSES = _rule(
    "slurm-processes",
    "error",
    "plan",
    "[slurm] machines and GPUs vs launch.num_processes",
    waivable=False,
)
# Advice: printed, never blocking.
STEPS_RANGE = _rule("steps-range", "advice", "T6", "total steps outside 1000-2000")
IMAGE_COUNT = _rule("image-count", "advice", "T7", "images outside 20-50")
EPOCHS_RANGE = _rule("epochs-range", "advice", "T8", "epochs outside 5-10")
RANK_RANGE = _rule("rank-range", "advice", "T11", "rank outside 4-128")
CLIP_SKIP_STYLE = _rule("clip-skip-style", "advice", "T23", "clip skip vs model style")
KEEP_TOKENS = _rule("keep-tokens", "advice", "T22", "keep_tokens vs the captions' trigger words")
MIXED_SIZES_NO_BUCKET = _rule(
    "mixed-sizes-no-bucket", "advice", "T13", "mixed image sizes without buckets"
)
ADAPTIVE_LR = _rule(
    "adaptive-lr", "advice", "T19", "DAdaptation/Prodigy want a learning rate near 1.0"
)
TE_LR_ZERO = _rule(
    "te-lr-zero", "advice", "sd-scripts", "text-encoder LR 0 still trains TE modules"
)
PROMPTS_UNUSED = _rule("prompts-unused", "advice", "T24", "prompts without a sampling schedule")
REG_UNUSED = _rule("reg-unused", "advice", "sd-scripts", "more reg images than training images")
SKIPPED_FILES = _rule("skipped-files", "advice", "sd-scripts", "files sd-scripts will not read")
IMAGE_LARGE = _rule(
    "image-large", "advice", "sd-scripts", "image over Pillow's pixel limit: a warning, much RAM"
)
CAPTION_BOM = _rule("caption-bom", "advice", "sd-scripts", "caption file starts with a BOM")
ORPHAN_CAPTIONS = _rule("orphan-captions", "advice", "sd-scripts", "caption files without image")
NESTED_FOLDERS = _rule(
    "nested-folders", "advice", "sd-scripts", "images in folders sd-scripts does not read"
)
SD_SCRIPTS_MISSING = _rule("sd-scripts-missing", "advice", "setup", "sd-scripts not found")
STEPS_PROCESSES = _rule(
    "steps-processes", "advice", "sd-scripts", "max_train_steps on P processes trains P× as much"
)
WARMUP_PROCESSES = _rule(
    "warmup-processes", "advice", "sd-scripts", "an integer warm-up ends after W/P steps"
)
DDP_IGNORED = _rule(
    "ddp-ignored", "advice", "sd-scripts", "DDP options that take no effect in this launch"
)
ACCELERATE_DEFAULT_CONFIG = _rule(
    "accelerate-default-config",
    "advice",
    "accelerate",
    "an `accelerate config` default file would change launches by hand",
)
# Hardware advice (this machine: the one `check` runs on).
GPU_BATCH_SIZE = _rule("gpu-batch-size", "advice", "T9", "batch size vs GPU memory")
GPU_PRECISION = _rule("gpu-precision", "advice", "sd-scripts", "mixed precision the GPU supports")
NO_GPU = _rule("no-gpu", "advice", "sd-scripts", "no NVIDIA GPU: CPU training is extremely slow")
DISK_SPACE = _rule("disk-space", "advice", "sd-scripts", "outputs may not fit on the disk")
RAM = _rule("ram", "advice", "sd-scripts", "host RAM low for training")
NETWORK_MODULE_UNKNOWN = _rule(
    "network-module-unknown", "advice", "sd-scripts", "network module not known for this family"
)
OPTION_IGNORED = _rule(
    "option-ignored", "advice", "sd-scripts", "a value sd-scripts ignores for this family"
)
TE_LR_UNUSED = _rule(
    "te-lr-unused", "advice", "sd-scripts", "an LR for a text encoder that is not trained"
)
FLUX_GUIDANCE = _rule("flux-guidance", "advice", "sd-scripts", "guidance_scale for training FLUX.1")
FLUX_FP32 = _rule("flux-fp32", "advice", "sd-scripts", "FLUX.1 in fp32 (T5-XXL alone ~19 GB)")
CPU_FP16 = _rule("cpu-fp16", "advice", "sd-scripts", "fp16 / full_fp16 on a machine without a GPU")
VRAM_FIT = _rule("vram-fit", "advice", "sd-scripts", "estimated peak GPU memory vs the card's")
