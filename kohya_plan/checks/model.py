"""The base model: that it exists, is readable and is of the plan's family; clip skip (T23)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan import rules

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


def check_clip_skip(plan: Plan, facts: Facts) -> Iterator[Finding]:
    if plan.model.family == "sdxl":
        if plan.model.clip_skip is not None:
            yield rules.CLIP_SKIP_STYLE.finding(
                "model.clip_skip",
                "SDXL training ignores clip_skip",
                "remove clip_skip",
            )
        return
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
