"""The base model: that it exists, is readable and is of the plan's family; clip skip (T23)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan import rules
from kohya_plan.inputs.hub.refs import parse_model_ref

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan
_ANIME_HINTS = ("anime", "anything", "counterfeit", "waifu", "novelai", "nai", "pony", "meina")
_REAL_HINTS = ("realistic", "photon", "real", "cyberrealistic", "epicrealism", "majicmix")


def check_model(plan: Plan, facts: Facts) -> Iterator[Finding]:
    if facts.model_kind == "missing":
        yield rules.MODEL_MISSING.finding(
            "model.base",
            f"{facts.model_ref} does not exist; sd-scripts would fail only after scanning "
            "the dataset",
            "fix the path (relative paths are relative to the plan file) or give a Hub repo id",
        )
    if facts.model_not_a_model is not None:
        yield rules.MODEL_NOT_A_MODEL.finding(
            "model.base",
            f"{facts.model_ref} is {facts.model_not_a_model}, not a model; sd-scripts would "
            "fail only after scanning the dataset",
            "point model.base at a checkpoint file (.safetensors or .ckpt), a Diffusers "
            "folder (model_index.json with unet/, vae/, text_encoder/, tokenizer/), or a "
            "Hugging Face repo id",
        )
    if facts.model_problem is not None:
        yield rules.MODEL_UNREADABLE.finding(
            "model.base",
            f"{facts.model_ref} cannot be read: {facts.model_problem}",
            "download or copy the checkpoint again",
        )
    from kohya_plan.inputs.checkpoint import family_problem

    problem = family_problem(facts.model_family_detected, plan.model.family)
    if problem is not None:
        message, _, fix = problem.partition("; ")
        yield rules.MODEL_FAMILY.finding("model.base", f"{plan.model.base} is {message}", fix)
    yield from _base_format(plan, facts)


def _base_format(plan: Plan, facts: Facts) -> Iterator[Finding]:
    """A family whose script needs the base model as one file (FLUX.1's DiT)."""
    fam = plan.family
    if not fam.base_folder_problem:
        return
    example = fam.base_example
    if facts.model_kind == "diffusers":
        yield rules.MODEL_FORMAT.finding(
            "model.base",
            f"{facts.model_ref} is a folder: {fam.base_folder_problem}",
            "point model.base at the model's single .safetensors file (on the Hub: "
            f"ORG/NAME/FILE.safetensors, e.g. {example})",
        )
    elif facts.model_kind == "hub" and _names_no_file(plan.model.base):
        yield rules.MODEL_FORMAT.finding(
            "model.base",
            f"{plan.model.base} names a whole repo: {fam.base_folder_problem}",
            f"name the model file inside the repo: ORG/NAME/FILE.safetensors, e.g. {example}",
        )


def _names_no_file(base: str) -> bool:
    try:
        return parse_model_ref(base).filename is None
    except ValueError:
        return False


def check_model_files(plan: Plan, facts: Facts) -> Iterator[Finding]:
    """The family's other model files (FLUX.1: ae, clip_l, t5xxl): there, readable, right."""
    from kohya_plan.inputs.checkpoint import file_problem

    specs = {s.key: s for s in plan.family.model_files}
    for found in facts.model_files:
        spec = specs[found.key]
        field = f"model.{found.key}"
        if found.kind == "missing":
            yield rules.MODEL_MISSING.finding(
                field,
                f"{found.ref} does not exist; sd-scripts would fail only after caching",
                f"fix the path, or give a Hub reference to one file such as {spec.example}",
            )
        elif found.kind == "diffusers":
            yield rules.MODEL_FORMAT.finding(
                field,
                f"{found.ref} is a folder; sd-scripts loads {spec.what} from one .safetensors file",
                f"point {field} at the file itself (e.g. {spec.example.rsplit('/', 1)[-1]})",
            )
        elif found.problem is not None:
            yield rules.MODEL_UNREADABLE.finding(
                field, f"{found.ref} cannot be read: {found.problem}", "download it again"
            )
        elif (problem := file_problem(found.detected, spec.kind, spec.what)) is not None:
            rule = rules.MODEL_FAMILY if found.detected in _WRONG_PART else rules.MODEL_FORMAT
            yield rule.finding(
                field,
                f"{found.ref} is {problem}",
                f"set {field} to {spec.what}, e.g. {spec.example}",
            )


_WRONG_PART = ("sd15", "sd2", "sdxl", "flux", "chroma", "flux-ae", "clip-l", "t5xxl", "lora", "vae")


def check_clip_skip(plan: Plan, facts: Facts) -> Iterator[Finding]:
    if "clip_skip" in plan.family.ignored_options:
        return  # check_ignored says so when it is set
    name = plan.model.base.lower()
    anime = any(h in name for h in _ANIME_HINTS)
    real = any(h in name for h in _REAL_HINTS)
    skip = plan.model.clip_skip or 1
    if plan.model.clip_skip is None:
        yield rules.CLIP_SKIP_STYLE.finding(
            "model.clip_skip",
            "not set, so sd-scripts uses 1",
            "T23: set clip_skip = 2 for anime models, 1 for realistic ones",
        )
    elif anime and skip == 1:
        yield rules.CLIP_SKIP_STYLE.finding(
            "model.clip_skip",
            "1 with what looks like an anime model",
            "T23: anime models are usually trained with clip_skip = 2",
        )
    elif real and skip == 2:
        yield rules.CLIP_SKIP_STYLE.finding(
            "model.clip_skip",
            "2 with what looks like a realistic model",
            "T23: realistic models are usually trained with clip_skip = 1",
        )
