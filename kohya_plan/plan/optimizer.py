"""[optimizer]: optimizer, learning rates and the LR schedule."""

from __future__ import annotations

import difflib

from pydantic import Field, field_validator

from kohya_plan.plan.common import (
    ExtraValue,
    Float,
    Int,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Section,
    Text,
    check_key_value_args,
)

# sd-scripts' train_util.get_optimizer compares these lower-cased.
KNOWN_OPTIMIZERS = (
    "AdamW",
    "AdamW8bit",
    "PagedAdamW",
    "PagedAdamW8bit",
    "PagedAdamW32bit",
    "Lion",
    "Lion8bit",
    "PagedLion8bit",
    "SGDNesterov",
    "SGDNesterov8bit",
    "DAdaptation",
    "DAdaptAdamPreprint",
    "DAdaptAdaGrad",
    "DAdaptAdam",
    "DAdaptAdan",
    "DAdaptAdanIP",
    "DAdaptLion",
    "DAdaptSGD",
    "Prodigy",
    "Adafactor",
    "RAdamScheduleFree",
    "AdamWScheduleFree",
    "SGDScheduleFree",
)
# Any other bare name is looked up case-sensitively in torch.optim by sd-scripts.
TORCH_OPTIMIZERS = (
    "SGD",
    "Adam",
    "RAdam",
    "NAdam",
    "Adamax",
    "Adagrad",
    "Adadelta",
    "RMSprop",
    "Rprop",
    "ASGD",
)
# transformers.SchedulerType values that sd-scripts can build, plus its own names.
KNOWN_SCHEDULERS = (
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "warmup_stable_decay",
    "piecewise_constant",
    "adafactor",
)
_BROKEN_SCHEDULERS = ("reduce_lr_on_plateau", "cosine_warmup_with_min_lr")


def canonical_optimizer(name: str) -> str | None:
    """The sd-scripts spelling of a built-in optimizer name, or None if it is not one."""
    lowered = name.lower()
    for known in KNOWN_OPTIMIZERS:
        if known.lower() == lowered:
            return known
    return name if name in TORCH_OPTIMIZERS else None


def is_adaptive(name: str) -> bool:
    """DAdapt*/Prodigy* pick their own step size: they want learning rates around 1.0.

    The one place that decides it (checks, lr-find and the report ask here). A dotted class
    counts by its class name: `prodigyplus.ProdigyPlusScheduleFree` is adaptive too.
    """
    lowered = name.rpartition(".")[2].lower()
    return lowered.startswith(("dadapt", "prodigy"))


def _suggest(value: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value.lower(), [c.lower() for c in choices], n=1, cutoff=0.6)
    if close:
        match = next(c for c in choices if c.lower() == close[0])
        return f'did you mean "{match}"?'
    return "use one of: " + ", ".join(choices)


class OptimizerSection(Section):
    """Optimizer, learning rates (T14–T18) and scheduler."""

    type: Text = Field("AdamW8bit", description="T14: optimizer (sd-scripts name or dotted class).")
    learning_rate: PositiveFloat = Field(
        1e-4, le=10, description="T15: default learning rate (adaptive optimizers: 1.0)."
    )
    unet_lr: Float | None = Field(
        None, ge=0, description="T16: U-Net LR (overrides learning_rate)."
    )
    text_encoder_lr: NonNegativeFloat | tuple[NonNegativeFloat, NonNegativeFloat] | None = Field(
        None,
        description=(
            "T17: text-encoder LR, 1/2 to 1/10 of the U-Net LR; two values for two text "
            "encoders where the network takes them (FLUX.1: [CLIP-L, T5-XXL])."
        ),
    )
    scheduler: Text = Field("cosine_with_restarts", description="T18: LR scheduler.")
    scheduler_num_cycles: PositiveInt = Field(
        1, le=10_000, description="Restarts for cosine_with_restarts."
    )
    scheduler_power: Float | None = Field(None, gt=0, description="Power for polynomial.")
    min_lr_ratio: Float | None = Field(
        None, ge=0, le=1, description="Minimum LR ratio (cosine_with_min_lr, warmup_stable_decay)."
    )
    warmup_steps: Int | Float = Field(
        0, ge=0, description="Warmup: an integer is a step count, a float below 1 a ratio."
    )
    max_grad_norm: Float | None = Field(None, ge=0, description="Gradient clipping (0 disables).")
    args: dict[Text, ExtraValue] = Field(
        default_factory=dict, description="Optimizer arguments, e.g. { weight_decay = 0.01 }."
    )
    scheduler_args: dict[Text, ExtraValue] = Field(
        default_factory=dict, description="Scheduler arguments, e.g. { step_rules = '1:10,0.1' }."
    )

    @field_validator("type")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        if "." in value:
            if not all(part.isidentifier() for part in value.split(".")):
                msg = f'{value!r} is not a dotted class path — e.g. "pytorch_optimizer.CAME"'
                raise ValueError(msg)
            return value
        canonical = canonical_optimizer(value)
        if canonical is None:
            hint = _suggest(value, KNOWN_OPTIMIZERS + TORCH_OPTIMIZERS)
            msg = f"sd-scripts has no optimizer {value!r} — {hint}"
            raise ValueError(msg)
        return canonical

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, value: str) -> str:
        if value in _BROKEN_SCHEDULERS:
            msg = f'{value!r} is accepted by name but crashes in sd-scripts — use "cosine" instead'
            raise ValueError(msg)
        if value not in KNOWN_SCHEDULERS:
            hint = _suggest(value, KNOWN_SCHEDULERS)
            msg = f"sd-scripts has no LR scheduler {value!r} — {hint}"
            raise ValueError(msg)
        return value

    @field_validator("warmup_steps")
    @classmethod
    def _warmup_ratio_below_one(cls, value: int | float) -> int | float:
        # sd-scripts reads any float from a config file as a ratio: 100.0 would mean 100x the run.
        if isinstance(value, float) and value >= 1:
            msg = (
                f"{value!r} is a float, which sd-scripts reads as a ratio of all steps — "
                f"write {int(value)} for a step count or a value below 1 for a ratio"
            )
            raise ValueError(msg)
        return value

    @field_validator("args", "scheduler_args")
    @classmethod
    def _args_plain(cls, value: dict[str, ExtraValue]) -> dict[str, ExtraValue]:
        return check_key_value_args(value, "{ weight_decay = 0.01 }")

    @property
    def effective_unet_lr(self) -> float:
        """The U-Net LR sd-scripts will use (unet_lr falls back to learning_rate)."""
        return self.learning_rate if self.unet_lr is None else self.unet_lr

    @property
    def effective_text_encoder_lr(self) -> float:
        """The (first) text-encoder LR sd-scripts will use (falls back to learning_rate)."""
        return self.text_encoder_lrs(1)[0]

    def text_encoder_lrs(self, encoders: int) -> tuple[float, ...]:
        """The LR of each of `encoders` text encoders as given: one value serves every encoder,
        none means learning_rate (whether the network honours a second value is the family's
        question: `Family.takes_text_encoder_lr_list`)."""
        value = self.text_encoder_lr
        if value is None:
            return (self.learning_rate,) * encoders
        if isinstance(value, tuple):
            return tuple(value[i] if i < len(value) else value[-1] for i in range(encoders))
        return (value,) * encoders

    @property
    def text_encoder_lr_values(self) -> tuple[float, ...]:
        """text_encoder_lr as a tuple of what was written (empty when not set)."""
        value = self.text_encoder_lr
        if value is None:
            return ()
        return value if isinstance(value, tuple) else (value,)
