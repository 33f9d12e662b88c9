"""Optimizer and learning rates: text-encoder ratio (T17), adaptive optimizers (T19), schedulers."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from kohya_plan import rules
from kohya_plan.lora import trained_parts
from kohya_plan.plan.optimizer import is_adaptive

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan


def _trained_text_encoders(plan: Plan) -> list[tuple[int, str, float]]:
    """(index, name, LR that takes effect) of each text encoder the plan trains with LR > 0."""
    fam = plan.family
    encoders = fam.text_encoder_parts()
    lrs = plan.optimizer.text_encoder_lrs(len(encoders))
    if not fam.takes_text_encoder_lr_list(plan.network.module):
        lrs = (lrs[0],) * len(encoders)  # networks.lora keeps only the first value
    trained = {p.text_encoder for p in trained_parts(plan) if p.role == "text_encoder"}
    return [
        (i, fam.text_encoders[i], lrs[i])
        for i, part in enumerate(encoders)
        if part.text_encoder in trained and lrs[i] > 0
    ]


def check_te_ratio(plan: Plan, facts: Facts) -> Iterator[Finding]:
    o = plan.optimizer
    if is_adaptive(o.type) or o.type == "Adafactor":
        return
    unet = o.effective_unet_lr
    if unet <= 0:
        return
    listed = len(o.text_encoder_lr_values) > 1
    seen: set[float] = set()
    for _, name, te in _trained_text_encoders(plan):
        if te in seen:
            continue  # one value for several encoders: said once
        seen.add(te)
        ratio = te / unet
        low_ok = ratio > 0.1 or math.isclose(ratio, 0.1, rel_tol=1e-9)
        high_ok = ratio < 0.5 or math.isclose(ratio, 0.5, rel_tol=1e-9)
        if low_ok and high_ok:
            continue
        source = "unet_lr" if o.unet_lr is not None else "learning_rate"
        which = f" ({name})" if listed else ""
        yield rules.TE_LR_RATIO.finding(
            "optimizer.text_encoder_lr",
            f"text-encoder LR{which} {te:g} is {ratio:.3g}× the U-Net LR ({source} = {unet:g}), "
            "outside 1/10..1/2",
            f"set text_encoder_lr between {unet / 10:g} and {unet / 2:g} (T17), "
            'or waive with rules.allow = ["te-lr-ratio"]',
        )


def check_te_zero(plan: Plan, facts: Facts) -> Iterator[Finding]:
    if 0 in plan.optimizer.text_encoder_lr_values[:1] and not plan.network.train_unet_only:
        yield rules.TE_LR_ZERO.finding(
            "optimizer.text_encoder_lr",
            "0 still builds and saves text-encoder LoRA modules (with zero weights)",
            "set network.train_unet_only = true instead",
        )


def check_adaptive(plan: Plan, facts: Facts) -> Iterator[Finding]:
    o = plan.optimizer
    if is_adaptive(o.type) and o.learning_rate <= 0.1:
        yield rules.ADAPTIVE_LR.finding(
            "optimizer.learning_rate",
            f"{o.type} adapts the step size itself; learning_rate {o.learning_rate:g} is too low",
            "set learning_rate = 1.0 (and unet_lr/text_encoder_lr unset or 1.0)",
        )


def check_scheduler(plan: Plan, facts: Facts) -> Iterator[Finding]:
    o = plan.optimizer
    if o.scheduler == "constant" and o.warmup_steps:
        yield rules.SCHEDULER_WARMUP.finding(
            "optimizer.warmup_steps",
            f"the constant scheduler takes no warmup (got {o.warmup_steps}); sd-scripts would "
            "stop with a ValueError after loading the model",
            'set warmup_steps = 0 or scheduler = "constant_with_warmup"',
        )
    if o.scheduler == "cosine_with_min_lr" and o.min_lr_ratio is None:
        yield rules.SCHEDULER_MIN_LR.finding(
            "optimizer.min_lr_ratio",
            "cosine_with_min_lr needs a minimum LR ratio",
            "set min_lr_ratio, e.g. 0.1",
        )
    if o.scheduler == "adafactor" and o.type != "Adafactor":
        yield rules.SCHEDULER_ADAFACTOR.finding(
            "optimizer.scheduler",
            f'the adafactor scheduler works only with the Adafactor optimizer, not "{o.type}"',
            'use scheduler = "cosine_with_restarts" or "constant"',
        )
    if o.scheduler == "polynomial" and o.learning_rate <= 1e-7:
        yield rules.SCHEDULER_POLYNOMIAL_LR.finding(
            "optimizer.learning_rate",
            f"polynomial decays to 1e-7, which is not below learning_rate {o.learning_rate:g}",
            "raise learning_rate or use another scheduler",
        )
