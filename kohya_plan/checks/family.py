"""What sd-scripts does differently per model family: the network module, text-encoder LRs and
caching, precision switches, options a family ignores, and each family's own rules
(`Family.checks`, declared in kohya_plan/families/<name>.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan import rules
from kohya_plan.families import family_of_module
from kohya_plan.lora import trained_parts
from kohya_plan.options import OPTION_FOR
from kohya_plan.plan.fit import set_keys

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan

# sd-scripts' is_text_encoder_output_cacheable: a subset with any of these cannot be cached.
_UNCACHEABLE_EXTRAS = ("token_warmup_step", "caption_tag_dropout_rate")


def check_network_module(plan: Plan, facts: Facts) -> Iterator[Finding]:
    module, fam = plan.network.module, plan.family
    if module in fam.network_modules:
        return
    owners = [f for f in family_of_module(module) if f.name != fam.name]
    if owners and module not in fam.unchecked_modules:
        names = " and ".join(f.label for f in owners)
        yield rules.NETWORK_MODULE_FAMILY.finding(
            "network.module",
            f"{module} is built for {names}: on a {fam.label} model it finds none of the layers "
            "it targets and trains nothing useful (sd-scripts does not check this)",
            f'use network.module = "{fam.network_modules[0]}" for {fam.label}',
        )
        return
    yield rules.NETWORK_MODULE_UNKNOWN.finding(
        "network.module",
        f"kohya-plan cannot tell whether {module} supports {fam.label}; for {fam.label} it "
        f"knows {', '.join(fam.network_modules)}",
        "check the module's documentation; LoRA file sizes are not predicted for it",
    )


def check_ignored(plan: Plan, facts: Facts) -> Iterator[Finding]:
    ignored = plan.family.ignored_options
    if not ignored:
        return
    for key, value in set_keys(plan).items():
        option = OPTION_FOR[key]
        if option in ignored:
            yield rules.OPTION_IGNORED.finding(
                key,
                f"{value!r} is not passed to {plan.family.script}: {ignored[option]}",
                f"remove {key}",
            )


def check_text_encoder_lrs(plan: Plan, facts: Facts) -> Iterator[Finding]:
    o, fam = plan.optimizer, plan.family
    values = o.text_encoder_lr_values
    if len(values) < 2:
        return
    encoders = len(fam.text_encoder_parts())
    if encoders < 2:
        yield rules.TE_LR_LIST.finding(
            "optimizer.text_encoder_lr",
            f"{fam.label} has one text encoder, so two learning rates ({values[0]:g}, "
            f"{values[1]:g}) cannot both apply",
            f"write one value: text_encoder_lr = {values[0]:g}",
        )
        return
    if values[0] != values[1] and not fam.takes_text_encoder_lr_list(plan.network.module):
        yield rules.TE_LR_LIST.finding(
            "optimizer.text_encoder_lr",
            f"{plan.network.module} trains {' and '.join(fam.text_encoders)} with ONE learning "
            f"rate: train_network.py keeps only the first value ({values[0]:g}) for a network "
            f"without per-encoder learning rates, so {values[1]:g} would be dropped silently",
            f"write one value: text_encoder_lr = {values[0]:g} (or {values[1]:g})",
        )
        return
    trained = {p.text_encoder for p in trained_parts(plan) if p.role == "text_encoder"}
    for index, part in enumerate(fam.text_encoder_parts()):
        if index < len(values) and part.text_encoder not in trained:
            why = (
                f"network.args {part.needs_arg} = true is not set"
                if part.needs_arg and not plan.network.train_unet_only
                else "it is not trained"
            )
            yield rules.TE_LR_UNUSED.finding(
                "optimizer.text_encoder_lr",
                f"the value for {fam.text_encoders[index]} ({values[index]:g}) has no effect: "
                f"{why}",
                f"remove it (write one value), or train {fam.text_encoders[index]}",
            )


def check_text_encoder_cache(plan: Plan, facts: Facts) -> Iterator[Finding]:
    t, ds = plan.training, plan.dataset
    if not (t.cache_text_encoder_outputs or t.cache_text_encoder_outputs_to_disk):
        return
    fam = plan.family
    offenders = []
    if ds.shuffle_caption or any(s.shuffle_caption for s in ds.subsets):
        offenders.append("dataset.shuffle_caption")
    if ds.caption_dropout_rate > 0:
        offenders.append("dataset.caption_dropout_rate")
    for key in _UNCACHEABLE_EXTRAS:
        value = plan.launch.extra.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            offenders.append(f"launch.extra.{key}")
    if offenders:
        yield rules.TE_CACHE_AUGMENT.finding(
            "training.cache_text_encoder_outputs",
            f"cached text-encoder outputs are computed once per caption, which "
            f"{', '.join(offenders)} change every step: {fam.script} stops with an "
            "AssertionError",
            f"turn off {' and '.join(offenders)}, or set cache_text_encoder_outputs = false",
        )


def check_precision_switches(plan: Plan, facts: Facts) -> Iterator[Finding]:
    t = plan.training
    for flag, needs in (("full_fp16", "fp16"), ("full_bf16", "bf16")):
        if getattr(t, flag) and t.mixed_precision != needs:
            yield rules.FULL_PRECISION.finding(
                f"training.{flag}",
                f"{flag} with mixed_precision {t.mixed_precision!r}: sd-scripts asserts "
                f"\"{flag} requires mixed precision='{needs}'\" after loading the model",
                f'set training.mixed_precision = "{needs}", or {flag} = false',
            )
    if t.full_fp16 and t.full_bf16:
        yield rules.FULL_PRECISION.finding(
            "training.full_bf16", "full_fp16 and full_bf16 together", "keep at most one of them"
        )
    if t.fp8_base and t.mixed_precision == "no":
        yield rules.FP8_BASE_PRECISION.finding(
            "training.fp8_base",
            'fp8_base computes in fp16 or bf16; with mixed_precision "no" sd-scripts asserts '
            "\"fp8_base requires mixed precision='fp16' or 'bf16'\"",
            'set training.mixed_precision = "bf16" (or "fp16")',
        )


def check_family_rules(plan: Plan, facts: Facts) -> Iterator[Finding]:
    """The family's own rules (families/<name>.py)."""
    for check in plan.family.checks:
        yield from check(plan, facts)
