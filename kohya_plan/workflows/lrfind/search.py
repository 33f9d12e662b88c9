"""`kohya-plan lr-find`: the tutorial's learning-rate habit (T19–T21), automated.

A short run with an adaptive optimizer (DAdaptAdam, or Prodigy) whose step size settles on
its own; the value where TensorBoard's `lr/d*lr/unet` goes flat is the learning rate to use
with AdamW8bit (T20), and a third of it with Lion (T21). Deriving the search plan, finding the
plateau and writing the new plan are pure; running is `launching`'s job.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SEARCHERS = {"dadapt": "DAdaptAdam", "prodigy": "Prodigy"}
TARGETS = {"adamw8bit": ("AdamW8bit", 1.0), "lion": ("Lion", 1 / 3)}
UNET_TAG = "lr/d*lr/unet"
TE_TAG = "lr/d*lr/textencoder"
FLAT_TOLERANCE = 0.05  # ±5 % of the final value counts as "a straight line" (T19)
_WAIVE = ("epochs-range", "steps-range", "te-lr-ratio", "adaptive-lr", "prompts-unused")


def default_steps(batches_per_epoch: int) -> int:
    """Enough steps for D-Adaptation's estimate to settle: two epochs, within 200..1000."""
    return max(200, min(1000, 2 * batches_per_epoch))


def derive_search(data: Mapping[str, Any], *, searcher: str, steps: int) -> dict[str, Any]:
    """The plan data of the search run: adaptive optimizer at LR 1.0, constant schedule, no
    warmup, TensorBoard on, no sampling, a fixed step budget, a separate output name."""
    derived = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    derived["optimizer"] = {
        "type": SEARCHERS[searcher],
        "learning_rate": 1.0,
        "scheduler": "constant",
        "warmup_steps": 0,
    }
    training = dict(derived.get("training", {}))
    for key in ("epochs", "save_every_n_steps", "save_last_n_epochs"):
        training.pop(key, None)
    # Only the final file: the search's LoRA is a by-product.
    training.update(
        max_train_steps=steps, save_every_n_epochs=0, tensorboard=True, save_state=False
    )
    derived["training"] = training
    derived["sampling"] = {}
    output = dict(derived.get("output", {}))
    output["name"] = f"{output.get('name', 'lora')}-lr-find"
    derived["output"] = output
    rules = dict(derived.get("rules", {}))
    rules["allow"] = sorted(set(rules.get("allow", [])) | set(_WAIVE))
    derived["rules"] = rules
    return derived


@dataclass(frozen=True, slots=True)
class Plateau:
    """Where an adaptive optimizer's learning rate went flat (or that it did not)."""

    value: float  # the learning rate found (median of the flat stretch, or the last value)
    settled: bool
    since_step: int | None  # first step of the flat stretch
    spread: float  # (max - min) / value over the last quarter of the run
    last_step: int
    points: int


def find_plateau(points: Sequence[tuple[int, float]], tolerance: float = FLAT_TOLERANCE) -> Plateau:
    """Find the flat end of a d*lr curve: the longest tail that stays within ±tolerance of the
    final level (the median of the last quarter). Settled when that tail covers at least the
    last quarter of the run. Linear in the number of points."""
    clean = [(s, v) for s, v in sorted(points) if math.isfinite(v) and v > 0]
    if not clean:
        msg = "no learning-rate values to read"
        raise ValueError(msg)
    values = [v for _, v in clean]
    quarter = values[-max(2, len(values) // 4) :]
    level = statistics.median(quarter)
    spread = (max(quarter) - min(quarter)) / level
    start = len(values)
    while start > 0 and abs(values[start - 1] - level) <= tolerance * level:
        start -= 1
    tail = values[start:]
    settled = len(values) >= 8 and len(tail) >= max(2, len(values) // 4)
    return Plateau(
        value=statistics.median(tail) if settled else values[-1],
        settled=settled,
        since_step=clean[start][0] if settled else None,
        spread=spread,
        last_step=clean[-1][0],
        points=len(values),
    )


def describe(plateau: Plateau, tag: str = UNET_TAG) -> str:
    """One plain sentence about the curve."""
    if plateau.settled:
        return (
            f"{tag} went flat at {plateau.value:.3g} from step {plateau.since_step} "
            f"(the last quarter varies by {plateau.spread * 100:.1f} %)"
        )
    return (
        f"{tag} never settled within {plateau.last_step} steps (the last quarter still varies "
        f"by {plateau.spread * 100:.1f} %); its last value is {plateau.value:.3g} — run longer "
        "with --steps"
    )


def optimizer_table(
    found: float, *, target: str, te_ratio: float, scheduler: str, train_te: bool
) -> dict[str, Any]:
    """The [optimizer] section for the new plan (T20: AdamW8bit; T21: Lion at a third)."""
    name, factor = TARGETS[target]
    unet = float(f"{found * factor:.3g}")
    table: dict[str, Any] = {
        "type": name,
        "learning_rate": unet,
        "unet_lr": unet,
        "scheduler": scheduler,
    }
    if train_te:
        # More digits than the U-Net LR, so the ratio stays exactly within T17's bounds.
        table["text_encoder_lr"] = float(f"{unet * te_ratio:.6g}")
    return table


_SECTION = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]\s*(#.*)?$")


def replace_section(text: str, section: str, body: Sequence[str], note: str) -> str:
    """The plan text with one [section] replaced, comments elsewhere kept as the user wrote them."""
    lines = text.splitlines()
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if (m := _SECTION.match(line)) and m.group(1) == section
        ),
        None,
    )
    block = [f"# {line}" for line in note.splitlines()] + [f"[{section}]", *body]
    if start is None:
        return text.rstrip("\n") + "\n\n" + "\n".join(block) + "\n"
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")),
        len(lines),
    )
    # Keep the blank/comment lines that belong to the next section.
    while end > start + 1 and (
        not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")
    ):
        end -= 1
    return "\n".join([*lines[:start], *block, *lines[end:]]) + "\n"


def text_chart(points: Sequence[tuple[int, float]], width: int = 60, height: int = 10) -> list[str]:
    """A small terminal line chart (one block character per column)."""
    if not points:
        return []
    steps = [s for s, _ in points]
    values = [v for _, v in points]
    low, high = min(values), max(values)
    span = (high - low) or abs(high) or 1.0
    columns: list[float] = []
    for c in range(width):
        # The value at the step this column stands for (nearest point).
        target = steps[0] + (steps[-1] - steps[0]) * c / max(1, width - 1)
        nearest = min(range(len(steps)), key=lambda i: abs(steps[i] - target))
        columns.append(values[nearest])
    rows = []
    for r in range(height, 0, -1):
        threshold = low + span * (r - 0.5) / height
        rows.append("".join("█" if v >= threshold else " " for v in columns))
    labels = [f"{high:9.3g} ┤", *["          │"] * (height - 2), f"{low:9.3g} ┤"]
    chart = [label + row for label, row in zip(labels, rows, strict=True)]
    chart.append("          └" + "─" * width)
    chart.append(f"           step {steps[0]}" + " " * max(1, width - 14) + f"{steps[-1]}")
    return chart
