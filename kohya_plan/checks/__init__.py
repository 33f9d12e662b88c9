"""The tutorial's rules and sd-scripts' pitfalls, checked against a plan and its data (pure).

One module per area (network, optimizer, training, launch, dataset, model, setup, hardware);
each check takes the frozen plan and the facts `inputs` gathered and yields findings of the
rules declared in `kohya_plan.rules`. Errors block `make` unless the plan waives a waivable id in
`rules.allow`; advice is printed and never blocks.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from kohya_plan import rules
from kohya_plan.checks import (
    dataset,
    family,
    filesystem,
    hardware,
    launch,
    memory,
    model,
    network,
    optimizer,
    setup,
    training,
)
from kohya_plan.findings import Finding, blocking
from kohya_plan.lora import lora_file_bytes, lora_parameters
from kohya_plan.rules import RULES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan

    Check = Callable[[Plan, Facts], Iterator[Finding]]

__all__ = ["CHECKS", "Finding", "blocking", "lora_file_bytes", "lora_parameters", "run_checks"]

# In the order findings are printed.
CHECKS: tuple[Check, ...] = (
    network.check_alpha,
    family.check_network_module,
    family.check_text_encoder_lrs,
    optimizer.check_te_ratio,
    optimizer.check_te_zero,
    optimizer.check_adaptive,
    optimizer.check_scheduler,
    network.check_only_flags,
    network.check_rank,
    training.check_cache_latents,
    family.check_text_encoder_cache,
    family.check_precision_switches,
    training.check_workers,
    training.check_epochs,
    training.check_sampling,
    dataset.check_buckets,
    model.check_model,
    model.check_model_files,
    model.check_clip_skip,
    family.check_ignored,
    family.check_family_rules,
    dataset.check_parents,
    dataset.check_folders,
    dataset.check_duplicate_folders,
    dataset.check_image_counts,
    dataset.check_keep_tokens,
    training.check_steps,
    launch.check_processes,
    launch.check_warmup,
    launch.check_ddp,
    launch.check_deepspeed,
    launch.check_slurm,
    dataset.check_reg,
    filesystem.check_writable,
    filesystem.check_name_length,
    setup.check_sd_scripts,
    launch.check_accelerate_config,
    hardware.check_hardware,
    memory.check_vram,
)


def run_checks(plan: Plan, facts: Facts, checks: Iterable[Check] = CHECKS) -> list[Finding]:
    """Every finding, in rule order, with waivers applied.

    A waiver never makes an unusable plan ready: when no training image is left (every folder
    skipped for a waived reason) and no unwaivable error says why, `no-training-data` does
    (when the dataset is among the `checks`).
    """
    allowed = set(plan.rules.allow)
    found: list[Finding] = []
    for check in (checks := tuple(checks)):
        for finding in check(plan, facts):
            found.append(replace(finding, waived=True) if finding.id in allowed else finding)
    unwaivable = any(f.severity == "error" and not RULES[f.id].waivable for f in found)
    if dataset.check_folders not in checks or unwaivable:
        return found
    if not any(f.exists and f.images and not f.subset.is_reg for f in facts.folders):
        found.append(
            rules.NO_TRAINING_DATA.finding(
                "dataset",
                "no training image is left once sd-scripts skips what it skips (see the "
                "waived findings), so it would find no data and exit without training",
                "give the image folders a repeat number (10_name) or list them under "
                "[[dataset.subsets]]; no waiver can make a plan without images train",
            )
        )
    return found
