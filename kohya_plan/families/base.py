"""What a model family declares (the record types); the families themselves are beside this.

Pure data: a family module builds one frozen `Family` from these pieces. `Plan` and `Facts`
appear only as types (a family's checks receive them), so the families come before the plan in
the stream and everything after may ask them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan

    Check = Callable[[Plan, Facts], Iterator[Finding]]

Role = Literal["unet", "text_encoder"]


def plan_value(plan: Plan, key: str) -> object:
    """The value of a dotted plan key (None when its section is absent)."""
    section, _, name = key.partition(".")
    return getattr(getattr(plan, section, None), name, None)


def applies(plan: Plan, unless: tuple[str, object] | None) -> bool:
    """False when the plan has the (key, value) that switches a part or file off."""
    return unless is None or plan_value(plan, unless[0]) != unless[1]


@dataclass(frozen=True, slots=True)
class TokenizerSource:
    """A tokenizer sd-scripts loads by repo id (``TokenizeStrategy._load_tokenizer``).

    sd-scripts looks for ``<tokenizer_cache_dir>/<repo id with "/" → "_">`` and downloads the
    tokenizer mid-run when that folder is missing; ``files`` must all be there, and at least one
    of ``any_of`` (T5's fast tokenizer is built from ``tokenizer.json`` or ``spiece.model``).
    """

    repo_id: str
    subfolder: str | None = None
    files: tuple[str, ...] = ("vocab.json", "merges.txt", "tokenizer_config.json")
    any_of: tuple[str, ...] = ()
    """At least one of these (the first is what the Hub repo holds)."""
    optional: tuple[str, ...] = ("special_tokens_map.json", "tokenizer.json")

    @property
    def folder(self) -> str:
        """``strategy_base._load_tokenizer``: ``model_id.replace("/", "_")``."""
        return self.repo_id.replace("/", "_")

    @property
    def all_files(self) -> tuple[str, ...]:
        """Every file worth fetching (required, alternatives, optional), each once."""
        return tuple(dict.fromkeys((*self.files, *self.any_of, *self.optional)))


CLIP_L = TokenizerSource("openai/clip-vit-large-patch14")
CLIP_BIG_G = TokenizerSource("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k")
SD2_TOKENIZER = TokenizerSource("stabilityai/stable-diffusion-2", "tokenizer")
T5_XXL = TokenizerSource(
    "google/t5-v1_1-xxl",
    files=("tokenizer_config.json",),
    any_of=("spiece.model", "tokenizer.json"),
    optional=("special_tokens_map.json",),
)
"""strategy_sd.py, strategy_sdxl.py and strategy_flux.py (T5TokenizerFast, CLIP-L)."""


@dataclass(frozen=True, slots=True)
class ModelFile:
    """A model file a family needs besides ``model.base`` (Flux: the AE, CLIP-L and T5-XXL).

    ``key`` is the ``[model]`` plan key, ``option`` the sd-scripts option it becomes, ``kind``
    what the file's header must show (``inputs.checkpoint`` kinds), ``example`` a Hub reference
    to one file that is the usual choice.
    """

    key: str
    option: str
    what: str
    kind: str
    example: str
    required: bool = True
    text_encoder: int = 0
    """Which text encoder the file holds (its index in text_encoder_lr), 0 for none."""
    unless: tuple[str, object] | None = None
    """(plan key, value) with which the file is not used (Chroma has no CLIP-L)."""
    fp8_example: str = ""
    """The same model in fp8 (kept fp8 on the GPU with fp8_base), where one exists."""


@dataclass(frozen=True, slots=True)
class LoraUnit:
    """Repeated blocks of a model that each get the same LoRA modules.

    ``count`` is the full-size model's number; ``shape_key`` names the count read from the
    checkpoint (``Facts.model_shape``; ``<shape_key>:params`` its parameters per rank where
    the layer width differs), so a smaller model is counted exactly.
    """

    name: str
    count: int
    modules: int
    params_per_rank: int
    shape_key: str = ""


@dataclass(frozen=True, slots=True)
class LoraPart:
    """One prefix of a LoRA file (``lora_unet``, ``lora_te1`` …) and what trains it."""

    prefix: str
    role: Role
    what: str
    units: tuple[LoraUnit, ...]
    text_encoder: int = 0
    """For a text-encoder part: which one (1, 2) — the index into text_encoder_lr."""
    needs_arg: str = ""
    """A network argument that must be true for sd-scripts to build this part (T5: train_t5xxl)."""
    unless: tuple[str, object] | None = None
    """(plan key, value) with which sd-scripts builds no such part (Chroma has no CLIP-L)."""


@dataclass(frozen=True, slots=True)
class Component:
    """A part of the base model, for the memory estimate (parameters, where it lives)."""

    name: str
    params: int
    role: Literal["denoiser", "text_encoder", "vae"]
    text_encoder: int = 0


@dataclass(frozen=True, slots=True)
class MemoryModel:
    """What the peak-VRAM estimate needs to know about a family (see families.memory).

    ``activation_gib`` is GiB of saved activations per image of 1024x1024 pixels with gradient
    checkpointing; ``no_checkpointing_factor`` multiplies it without. ``blocks`` are the
    swappable transformer blocks (Flux: double and single) with their parameter counts.
    """

    components: tuple[Component, ...]
    activation_gib: float
    no_checkpointing_factor: float
    vae_encode_gib: float
    sources: tuple[str, ...]
    blocks: tuple[tuple[str, int, int], ...] = ()
    """(name, count, parameters each) of the swappable blocks."""
    block_shape_keys: tuple[str, ...] = ()
    """The `Facts.model_shape` keys holding the actual count of each of `blocks`."""
    recompute_gib: float = 0.0
    """Of `activation_gib`: the part that does not scale with the number of blocks (one block
    recomputed during the backward pass)."""
    reference_tokens: int = 0
    """Tokens per image `activation_gib` is measured at (DiT families: image + text tokens);
    0: activations scale with the pixels instead."""


@dataclass(frozen=True, slots=True)
class VramStep:
    """One row of a family's "settings by GPU memory" table (the sd-scripts docs')."""

    vram_gib: float
    blocks_to_swap: int | None
    note: str


@dataclass(frozen=True)
class Family:
    """Everything kohya-plan knows about one model family (see the module docstrings)."""

    name: str
    label: str
    script: str
    base_example: str
    """A Hub reference to a typical base model (for messages and templates)."""
    bucket_step: int
    bucket_step_reason: str
    tokenizers: tuple[TokenizerSource, ...]
    text_encoders: tuple[str, ...]
    checkpoint_kinds: tuple[str, ...]
    """What ``inputs.checkpoint`` may detect in ``model.base`` for this family."""
    network_modules: tuple[str, ...]
    """Network modules built for this family's models (sd-scripts itself does not check)."""
    lora: tuple[LoraPart, ...]
    latent_cache_suffix: str
    startup: tuple[tuple[str, str], ...]
    """(message prefix, start-up phase) pairs its log prints (trainlog phases)."""
    templates: tuple[str, ...]
    ram_gib: tuple[float, float]
    """(RAM below which a machine is too small, RAM the run needs free) in GiB."""
    memory: MemoryModel
    model_files: tuple[ModelFile, ...] = ()
    section: str = ""
    """The plan section of the family's own training options (FLUX.1: "flux"), filled with
    its defaults when a plan of the family leaves it out; refused in other families' plans."""
    base_folder_problem: str = ""
    """Why a folder cannot be ``model.base`` (empty: a Diffusers folder is fine)."""
    unchecked_modules: tuple[str, ...] = ()
    """Modules that may support this family, which kohya-plan cannot confirm (advice)."""
    per_text_encoder_lrs: tuple[str, ...] = ()
    """Network modules that take one learning rate per text encoder (a list)."""
    text_encoder_lr_tags: tuple[str, ...] = ("lr/textencoder",)
    """TensorBoard's lr/ tag of each text encoder (sd-scripts' lr_descriptions)."""
    ignored_options: Mapping[str, str] = field(default_factory=dict)
    """sd-scripts options it ignores for this family → why (not rendered; `check` says so)."""
    refused_options: Mapping[str, str] = field(default_factory=dict)
    """sd-scripts options that are wrong for this family → why (the plan does not validate)."""
    vram_table: tuple[VramStep, ...] = ()
    cpu_precision: str = "no"
    """The mixed precision that works for a CPU run (fp16 never does; FLUX.1 in fp32 is ~60 GB)."""
    t9_factor: float = 1.0
    """The tutorial's T9 batch-size bands (SD1.5 at 512 px) scaled for this family's memory."""
    small_card_tip: str = ""
    """What to set on a card below T9's upper band (scaled), at batch 1."""
    checks: tuple[Check, ...] = ()
    te_cache_suffix: str = ""

    def text_encoder_parts(self) -> tuple[LoraPart, ...]:
        """The LoRA parts of the text encoders, in text_encoder_lr order."""
        return tuple(p for p in self.lora if p.role == "text_encoder")

    def takes_text_encoder_lr_list(self, module: str) -> bool:
        """Whether `module` gives each text encoder its own LR (else the first value is used)."""
        return module in self.per_text_encoder_lrs
