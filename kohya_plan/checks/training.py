"""Length and mechanics of the run: epochs and steps (T6, T8), cached latents, workers, sampling."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan import rules

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan


def check_cache_latents(plan: Plan, facts: Facts) -> Iterator[Finding]:
    t, ds = plan.training, plan.dataset
    if not (t.cache_latents or t.cache_latents_to_disk):
        return
    offenders = []
    if ds.color_aug or any(s.color_aug for s in ds.subsets):
        offenders.append("color_aug")
    if ds.random_crop or any(s.random_crop for s in ds.subsets):
        offenders.append("random_crop")
    if offenders:
        yield rules.CACHE_LATENTS_AUGMENT.finding(
            "training.cache_latents",
            f"cached latents cannot be used with {' and '.join(offenders)}; sd-scripts would stop "
            "with an AssertionError",
            f"set cache_latents = false or turn off {' and '.join(offenders)}",
        )


def check_workers(plan: Plan, facts: Facts) -> Iterator[Finding]:
    t = plan.training
    if t.persistent_data_loader_workers and t.max_data_loader_n_workers == 0:
        yield rules.PERSISTENT_WORKERS.finding(
            "training.persistent_data_loader_workers",
            "persistent workers need at least one data-loader worker",
            "set max_data_loader_n_workers = 1 or persistent_data_loader_workers = false",
        )


def check_epochs(plan: Plan, facts: Facts) -> Iterator[Finding]:
    epochs = facts.steps.epochs if facts.steps else plan.training.epochs
    if epochs is not None and not 5 <= epochs <= 10:
        yield rules.EPOCHS_RANGE.finding(
            "training.epochs",
            f"{epochs} epochs is outside the tutorial's 5..10",
            "T8: 5 to 10 epochs, and pick the best epoch by its samples",
        )


def check_sampling(plan: Plan, facts: Facts) -> Iterator[Finding]:
    s = plan.sampling
    scheduled = s.every_n_epochs or s.every_n_steps or s.at_first
    if scheduled and not s.prompts:
        yield rules.SAMPLING_NO_PROMPTS.finding(
            "sampling.prompts",
            "sampling is scheduled but there are no prompts; sd-scripts would crash at the "
            "first sample",
            'add prompts = ["masterpiece, best quality, 1girl --n low quality --w 512 --h 512"]',
        )
    if s.prompts and not scheduled:
        yield rules.PROMPTS_UNUSED.finding(
            "sampling.every_n_epochs",
            "prompts are given but no sample is ever made",
            "T24: set every_n_epochs = 1",
        )


def check_steps(plan: Plan, facts: Facts) -> Iterator[Finding]:
    steps = facts.steps
    if steps is None:
        return
    if not 1000 <= steps.total_optimization_steps <= 2000:
        yield rules.STEPS_RANGE.finding(
            "training.epochs",
            f"{steps.total_optimization_steps} total steps; the tutorial aims for 1000 to 2000",
            "T6: adjust repeats (folder number), epochs or batch size",
        )
