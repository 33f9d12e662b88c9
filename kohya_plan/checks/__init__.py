"""The tutorial's rules and sd-scripts' pitfalls, checked against a plan and its data (pure).

One module per area (network, optimizer, training, launch, dataset, model, setup, hardware);
each check takes the frozen plan and the facts `inputs` gathered and yields findings of the
rules declared in `kohya_plan.rules`. Errors block `make` unless the plan waives a waivable id in
`rules.allow`; advice is printed and never blocks.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from kohya_plan.checks import (
    dataset,
    hardware,
    launch,
    model,
    network,
    optimizer,
    setup,
    training,
)
from kohya_plan.findings import Finding, blocking
from kohya_plan.lora import lora_file_bytes, lora_parameters

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan

    Check = Callable[[Plan, Facts], Iterator[Finding]]

__all__ = ["CHECKS", "Finding", "blocking", "lora_file_bytes", "lora_parameters", "run_checks"]

# In the order findings are printed.
CHECKS: tuple[Check, ...] = (
    network.check_alpha,
    optimizer.check_te_ratio,
    optimizer.check_te_zero,
    optimizer.check_adaptive,
    optimizer.check_scheduler,
    network.check_only_flags,
    network.check_rank,
    training.check_cache_latents,
    training.check_workers,
    training.check_epochs,
    training.check_sampling,
    dataset.check_buckets,
    model.check_model,
    model.check_clip_skip,
    dataset.check_parents,
    dataset.check_folders,
    dataset.check_image_counts,
    dataset.check_keep_tokens,
    training.check_steps,
    launch.check_processes,
    launch.check_warmup,
    launch.check_ddp,
    launch.check_deepspeed,
    launch.check_slurm,
    dataset.check_reg,
    setup.check_sd_scripts,
    launch.check_accelerate_config,
    hardware.check_hardware,
)


def run_checks(plan: Plan, facts: Facts) -> list[Finding]:
    """Every finding, in rule order, with waivers applied."""
    allowed = set(plan.rules.allow)
    found: list[Finding] = []
    for check in CHECKS:
        for finding in check(plan, facts):
            found.append(replace(finding, waived=True) if finding.id in allowed else finding)
    return found
