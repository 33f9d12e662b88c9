"""An ESTIMATE of a plan's peak GPU memory, from its family's parameter counts (pure).

Not measured: no GPU was available where this was written. `scripts/gpu_vram_check.py` runs
one tiny SDXL and one tiny FLUX.1 step on a GPU and compares this estimate with
`torch.cuda.max_memory_allocated()`; until it has been run, treat the numbers as a guide.

The formula, per phase (GiB = 2^30 bytes; what sd-scripts keeps on the GPU in each):

* **caching latents** (with `cache_latents`): the VAE's weights (fp32 with `no_half_vae`, else
  the weight dtype) plus one image's encoder activations (`vae_encode_gib` per 1024² image in
  16-bit, twice that in fp32; sd-scripts' `vae_batch_size` is 1).
* **caching text-encoder outputs** (with `cache_text_encoder_outputs`): every text encoder's
  weights (sd-scripts moves the U-Net/DiT and VAE to the CPU first: "move vae and unet to cpu
  to save memory"); a fp8 T5-XXL file stays fp8 with `fp8_base`.
* **training**:
  - the U-Net/DiT weights: parameters × bytes (4 for `mixed_precision = "no"`, 2 for fp16/bf16,
    1 with `fp8_base`), less the blocks `blocks_to_swap` keeps on the CPU
    (`flux_models.enable_block_swap`: N//2 double and (N − N//2)·2 single blocks);
  - the text encoders that are not cached or are trained: parameters × bytes;
  - the VAE when latents are not cached (weights + encoder activations per image of the batch);
  - the LoRA: parameters × (weight + gradient: 4 + 4 bytes, 2 + 2 with full_fp16/full_bf16,
    + the optimizer's state: AdamW 8, AdamW8bit 2, Lion 4, Lion8bit 1, SGD 0, SGDNesterov 4,
    Adafactor ~1 (factored), DAdapt*/Prodigy 16 bytes);
  - activations: `activation_gib` per image at the family's reference size with gradient
    checkpointing, × `no_checkpointing_factor` without; U-Net families scale it with the
    pixels (w·h / 1024²), DiT families with the tokens (image (w/16)·(h/16) + T5 tokens) and
    the number of blocks (all but `recompute_gib`);
  - 0.5 GiB of workspace (cuBLAS, allocator slack).

`max_memory_allocated` leaves out the CUDA context (~0.3-1 GiB), so a card needs that much more;
the advice adds `CONTEXT_GIB`. Each family's `MemoryModel.sources` says where its constants
come from (its parameter counts, and the sd-scripts docs' configurations that fit a card).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kohya_plan.families.base import Family

GIB = 2**30
WORKSPACE_GIB = 0.5
CONTEXT_GIB = 0.75
"""The CUDA context and cuDNN/cuBLAS handles: on the card, not in max_memory_allocated."""

# Optimizer state per trained parameter, bytes (torch.optim / bitsandbytes / dadaptation /
# prodigyopt keep these per parameter; Adafactor factors 2-D states into a row and a column).
_OPTIMIZER_STATE = (
    ("pagedadamw8bit", 2.0),
    ("adamw8bit", 2.0),
    ("pagedlion8bit", 1.0),
    ("lion8bit", 1.0),
    ("sgdnesterov8bit", 1.0),
    ("sgdnesterov", 4.0),
    ("lion", 4.0),
    ("adafactor", 1.0),
    ("dadapt", 16.0),
    ("prodigy", 16.0),
    ("sgd", 0.0),
    ("adam", 8.0),
)


def optimizer_state_bytes(optimizer: str) -> float:
    """Bytes of optimizer state per trained parameter (8, AdamW's, when unknown)."""
    name = optimizer.rpartition(".")[2].lower()
    for prefix, size in _OPTIMIZER_STATE:
        if name.startswith(prefix):
            return size
    return 8.0


@dataclass(frozen=True, slots=True)
class MemorySettings:
    """What of a plan the estimate reads (a what-if copy is made with `dataclasses.replace`)."""

    mixed_precision: str
    batch_size: int
    width: int
    height: int
    optimizer: str
    lora_params: int
    gradient_checkpointing: bool = False
    cache_latents: bool = True
    cache_text_encoders: bool = False
    trained_text_encoders: frozenset[int] = frozenset()
    fp8_base: bool = False
    full_half: bool = False
    no_half_vae: bool = False
    blocks_to_swap: int = 0
    text_tokens: int = 512
    fp8_text_encoder_files: frozenset[int] = frozenset()
    shape: Mapping[str, int] = field(default_factory=dict)
    network_dim: int = 0
    """The rank `lora_params` is for (0: unknown, no rank change is suggested)."""


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """GiB per part of each phase, and the phase with the highest total."""

    phases: dict[str, dict[str, float]]

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=lambda p: sum(self.phases[p].values()))

    @property
    def peak_gib(self) -> float:
        """The estimated torch.cuda.max_memory_allocated() of the run, in GiB."""
        return sum(self.phases[self.peak_phase].values())


def _weight_bytes(settings: MemorySettings) -> int:
    return 4 if settings.mixed_precision == "no" else 2


def _denoiser_params(family: Family, settings: MemorySettings) -> tuple[int, int]:
    """(parameters of the model's U-Net/DiT, parameters block swap keeps off the GPU)."""
    memory = family.memory
    params = sum(c.params for c in memory.components if c.role == "denoiser")
    counts = []
    for (_, full, each), key in zip(memory.blocks, memory.block_shape_keys, strict=False):
        actual = settings.shape.get(key, full)
        params -= (full - actual) * each
        counts.append((actual, each))
    swapped = 0
    if settings.blocks_to_swap and len(counts) == 2:
        from kohya_plan.families.flux import swap_split

        double, single = swap_split(settings.blocks_to_swap)
        swapped = min(double, counts[0][0]) * counts[0][1]
        swapped += min(single, counts[1][0]) * counts[1][1]
    return params, swapped


def _activations(family: Family, settings: MemorySettings) -> float:
    memory = family.memory
    factor = 1.0 if settings.gradient_checkpointing else memory.no_checkpointing_factor
    if memory.reference_tokens:
        tokens = (settings.width // 16) * (settings.height // 16) + settings.text_tokens
        full = sum(count for _, count, _ in memory.blocks)
        actual = sum(
            settings.shape.get(key, count)
            for (_, count, _), key in zip(memory.blocks, memory.block_shape_keys, strict=False)
        )
        per_block = (memory.activation_gib - memory.recompute_gib) * actual / max(full, 1)
        per_image = (per_block + memory.recompute_gib) * factor
        return settings.batch_size * tokens / memory.reference_tokens * per_image
    pixels = settings.width * settings.height / 1024**2
    return settings.batch_size * pixels * memory.activation_gib * factor


def _text_encoder_bytes(family: Family, settings: MemorySettings, index: int) -> int:
    if settings.fp8_base and index in settings.fp8_text_encoder_files:
        return 1
    return _weight_bytes(settings)


def estimate(family: Family, settings: MemorySettings) -> MemoryEstimate:
    """The estimated peak GPU memory of a run (see the module docstring for the formula)."""
    wb = _weight_bytes(settings)
    memory = family.memory
    vae = next((c for c in memory.components if c.role == "vae"), None)
    vae_bytes = 4 if settings.no_half_vae or wb == 4 else wb
    encode = memory.vae_encode_gib * (2 if vae_bytes == 4 else 1)
    pixels = settings.width * settings.height / 1024**2
    encoders = [c for c in memory.components if c.role == "text_encoder"]
    phases: dict[str, dict[str, float]] = {}
    if settings.cache_latents and vae is not None:
        phases["caching latents"] = {
            "VAE weights": vae.params * vae_bytes / GIB,
            "VAE encoder activations": encode * pixels,
        }
    if settings.cache_text_encoders and encoders:
        phases["caching text-encoder outputs"] = {
            f"{c.name} weights": c.params
            * _text_encoder_bytes(family, settings, c.text_encoder)
            / GIB
            for c in encoders
        }
    params, swapped = _denoiser_params(family, settings)
    denoiser_bytes = 1 if settings.fp8_base else wb
    lora_bytes = (2 + 2) if settings.full_half else (4 + 4)
    lora_bytes_total = lora_bytes + optimizer_state_bytes(settings.optimizer)
    denoiser = next(c.name for c in memory.components if c.role == "denoiser")
    training = {
        f"{denoiser} weights": (params - swapped) * denoiser_bytes / GIB,
        "LoRA, gradients, optimizer state": settings.lora_params * lora_bytes_total / GIB,
        "activations": _activations(family, settings),
        "workspace": WORKSPACE_GIB,
    }
    on_gpu = [
        c
        for c in encoders
        if not settings.cache_text_encoders or c.text_encoder in settings.trained_text_encoders
    ]
    if on_gpu:
        training["text encoders"] = (
            sum(c.params * _text_encoder_bytes(family, settings, c.text_encoder) for c in on_gpu)
            / GIB
        )
    if not settings.cache_latents and vae is not None:
        training["VAE"] = vae.params * vae_bytes / GIB + encode * pixels * settings.batch_size
    phases["training"] = training
    return MemoryEstimate(phases)


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A plan change that lowers the estimate: the key, its value, the estimate after it."""

    field: str
    value: object
    peak_gib: float
    why: str


def fitting_changes(
    family: Family, settings: MemorySettings, budget_gib: float
) -> list[Suggestion]:
    """Changes, in the order the sd-scripts docs recommend them, until the estimate fits
    `budget_gib` (the card's memory less the CUDA context), each with the estimate after it;
    FLUX.1 then swaps blocks (the fewest that fit)."""
    return _walk(family, settings, budget_gib)


def _candidates(family: Family, s: MemorySettings) -> list[tuple[str, object, str, MemorySettings]]:
    found: list[tuple[str, object, str, MemorySettings]] = []
    if not s.gradient_checkpointing:
        found.append(
            (
                "training.gradient_checkpointing",
                True,
                "keeps one block's activations at a time",
                replace(s, gradient_checkpointing=True),
            )
        )
    if not s.cache_latents:
        found.append(
            (
                "training.cache_latents",
                True,
                "the VAE leaves the GPU after caching",
                replace(s, cache_latents=True),
            )
        )
    if s.trained_text_encoders:
        found.append(
            (
                "network.train_unet_only",
                True,
                "with training.cache_text_encoder_outputs = true the text encoders leave the "
                "GPU after caching",
                replace(s, trained_text_encoders=frozenset(), cache_text_encoders=True),
            )
        )
    if not s.cache_text_encoders and not s.trained_text_encoders and len(family.text_encoders) > 1:
        found.append(
            (
                "training.cache_text_encoder_outputs",
                True,
                "the text encoders leave the GPU after caching (with network.train_unet_only)",
                replace(s, cache_text_encoders=True),
            )
        )
    if s.mixed_precision != "no" and not s.fp8_base and family.memory.blocks:
        found.append(
            (
                "training.fp8_base",
                True,
                "the DiT in fp8: half its memory",
                replace(s, fp8_base=True),
            )
        )
    for spec in family.model_files:
        index = spec.text_encoder
        if spec.fp8_example and index and index not in s.fp8_text_encoder_files:
            found.append(
                (
                    f"model.{spec.key}",
                    spec.fp8_example,
                    "an fp8 file (kept fp8 with training.fp8_base = true): half the memory "
                    "while its outputs are cached",
                    replace(
                        s,
                        fp8_base=True,
                        fp8_text_encoder_files=s.fp8_text_encoder_files | {index},
                    ),
                )
            )
    if optimizer_state_bytes(s.optimizer) > 2:
        found.append(
            (
                "optimizer.type",
                "AdamW8bit",
                "8-bit optimizer state",
                replace(s, optimizer="AdamW8bit"),
            )
        )
    small = 8  # the docs' "dim 4 to 8" for small cards
    if s.network_dim > small:
        found.append(
            (
                "network.dim",
                small,
                "a smaller LoRA (the sd-scripts docs: 4 to 8 on small cards)",
                replace(s, lora_params=s.lora_params * small // s.network_dim, network_dim=small),
            )
        )
    if s.batch_size > 1:
        found.append(
            ("training.batch_size", 1, "activations for one image", replace(s, batch_size=1))
        )
    return found


def _walk(family: Family, settings: MemorySettings, budget_gib: float) -> list[Suggestion]:
    """Apply, one at a time, the first change (in the docs' order) that lowers the peak, until
    the estimate fits or nothing lowers it; block swap (the fewest blocks that fit) comes last."""
    suggestions: list[Suggestion] = []
    current = settings
    done: set[str] = set()
    while estimate(family, current).peak_gib > budget_gib:
        peak = estimate(family, current).peak_gib
        step = None
        for key, value, why, changed in _candidates(family, settings):
            if key in done:
                continue
            trial = _apply(current, changed, key)
            if estimate(family, trial).peak_gib < peak - 1e-6:
                step = (key, value, why, trial)
                break
        if step is None and family.memory.blocks and "flux.blocks_to_swap" not in done:
            swap = _blocks_to_fit(family, current, budget_gib)
            trial = replace(current, blocks_to_swap=swap)
            if swap and estimate(family, trial).peak_gib < peak - 1e-6:
                why = "keeps that many blocks on the CPU (slower)"
                step = ("flux.blocks_to_swap", swap, why, trial)
        if step is None:
            break
        key, value, why, current = step
        done.add(key)
        suggestions.append(Suggestion(key, value, estimate(family, current).peak_gib, why))
    return _fewest_blocks(family, current, budget_gib, suggestions)


def _fewest_blocks(
    family: Family, final: MemorySettings, budget_gib: float, suggestions: list[Suggestion]
) -> list[Suggestion]:
    """With the later changes in place, swap no more blocks than the plan needs to fit."""
    index = next((i for i, c in enumerate(suggestions) if c.field == "flux.blocks_to_swap"), None)
    if index is None or estimate(family, final).peak_gib > budget_gib:
        return suggestions
    fewest = _blocks_to_fit(family, replace(final, blocks_to_swap=0), budget_gib)
    if not fewest or fewest >= final.blocks_to_swap:
        return suggestions
    old = suggestions[index]
    suggestions[index] = Suggestion(old.field, fewest, old.peak_gib, old.why)
    # the estimate after the last change, with the fewer blocks swapped
    last = suggestions[-1]
    peak = estimate(family, replace(final, blocks_to_swap=fewest)).peak_gib
    suggestions[-1] = Suggestion(last.field, last.value, peak, last.why)
    return suggestions


def _apply(current: MemorySettings, changed: MemorySettings, key: str) -> MemorySettings:
    """Carry one change of `changed` (made from the original settings) over to `current`."""
    if key.startswith("model."):  # an fp8 text-encoder file (and fp8_base to keep it so)
        return replace(
            current,
            fp8_base=True,
            fp8_text_encoder_files=current.fp8_text_encoder_files | changed.fp8_text_encoder_files,
        )
    if key == "network.train_unet_only":
        return replace(current, trained_text_encoders=frozenset(), cache_text_encoders=True)
    if key == "network.dim":
        per_rank = current.lora_params // max(current.network_dim, 1)
        return replace(
            current, lora_params=per_rank * changed.network_dim, network_dim=changed.network_dim
        )
    attribute = {
        "training.gradient_checkpointing": "gradient_checkpointing",
        "training.cache_latents": "cache_latents",
        "training.cache_text_encoder_outputs": "cache_text_encoders",
        "training.fp8_base": "fp8_base",
        "optimizer.type": "optimizer",
        "training.batch_size": "batch_size",
    }[key]
    return replace(current, **{attribute: getattr(changed, attribute)})


def _blocks_to_fit(family: Family, settings: MemorySettings, budget_gib: float) -> int:
    from kohya_plan.families.flux import max_blocks_to_swap

    counts = [
        settings.shape.get(key, full)
        for (_, full, _), key in zip(
            family.memory.blocks, family.memory.block_shape_keys, strict=False
        )
    ]
    limit = max_blocks_to_swap(counts[0], counts[1]) if len(counts) == 2 else 0
    for n in range(settings.blocks_to_swap + 1, limit + 1):
        if estimate(family, replace(settings, blocks_to_swap=n)).peak_gib <= budget_gib:
            return n
    return limit
