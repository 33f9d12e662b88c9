"""Model families: what sd-scripts does differently for SD1.5, SDXL and FLUX.1 (pure).

One module per family declares it as a frozen `Family`: the training script and its option
snapshot, the bucket step sd-scripts enforces, the tokenizers and model files it needs, the
network modules it accepts, its LoRA shape (parameters per rank), its own rules, templates,
start-up log lines, latent cache suffix and memory model. Everything after the plan asks the
plan's family instead of testing for a family by name; adding a family is adding a module here
(with its option snapshot and tests).
"""

from __future__ import annotations

from kohya_plan.families import flux, sd15, sdxl
from kohya_plan.families.base import (
    CLIP_BIG_G,
    CLIP_L,
    SD2_TOKENIZER,
    T5_XXL,
    Component,
    Family,
    LoraPart,
    LoraUnit,
    MemoryModel,
    ModelFile,
    TokenizerSource,
    VramStep,
)

__all__ = [
    "CLIP_BIG_G",
    "CLIP_L",
    "FAMILIES",
    "SD2_TOKENIZER",
    "T5_XXL",
    "Component",
    "Family",
    "LoraPart",
    "LoraUnit",
    "MemoryModel",
    "ModelFile",
    "TokenizerSource",
    "VramStep",
    "family",
    "family_of_module",
    "names",
]

FAMILIES: dict[str, Family] = {f.name: f for f in (sd15.FAMILY, sdxl.FAMILY, flux.FAMILY)}
"""Every family kohya-plan plans, by its `model.family` name."""


def family(name: str) -> Family:
    """The family called `name` (`model.family`); KeyError lists the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        msg = f"no model family {name!r} — use one of: {', '.join(FAMILIES)}"
        raise KeyError(msg) from None


def names() -> tuple[str, ...]:
    """The `model.family` values, in declaration order."""
    return tuple(FAMILIES)


def family_of_module(module: str) -> tuple[Family, ...]:
    """The families that declare the network module `module`."""
    return tuple(f for f in FAMILIES.values() if module in f.network_modules)
