"""`kohya-plan lr-find`: the tutorial's learning-rate habit (T19–T21), automated.

A short run with an adaptive optimizer (DAdaptAdam, or Prodigy) whose step size settles on
its own; the value where TensorBoard's `lr/d*lr/unet` goes flat is the learning rate to use
with AdamW8bit (T20), and a third of it with Lion (T21). Deriving the search plan, finding the
plateau and writing the new plan's text are pure; running is `run.py`'s job.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kohya_plan.families import Family

from kohya_plan.plan.optimizer import canonical_optimizer

SEARCHERS = {"dadapt": "DAdaptAdam", "prodigy": "Prodigy"}
TARGETS = {"adamw8bit": ("AdamW8bit", 1.0), "lion": ("Lion", 1 / 3)}
UNET_TAG = "lr/d*lr/unet"
TE_TAG = "lr/d*lr/textencoder"
FLAT_TOLERANCE = 0.05  # ±5 % of the final value counts as "a straight line" (T19)
_WAIVE = ("epochs-range", "steps-range", "te-lr-ratio", "adaptive-lr", "prompts-unused")


def te_tags(family: Family) -> list[str]:
    """The d*lr tags of the (first) text encoder, the family's own first: FLUX.1's lora_flux
    names its groups "textencoder 1 " (with the trailing space sd-scripts writes)."""
    own = [f"lr/d*lr/{tag.removeprefix('lr/')}" for tag in family.text_encoder_lr_tags[:1]]
    return list(dict.fromkeys([*own, TE_TAG]))


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


# The [optimizer] keys lr-find decides: any of them the new table leaves out goes.
DECIDED_KEYS = (
    "type",
    "learning_rate",
    "unet_lr",
    "text_encoder_lr",
    "scheduler",
    "scheduler_num_cycles",
)
# Keys that belong to the optimizer, or the scheduler, in use: they go when it changes.
_OPTIMIZER_KEYS = ("args",)
_SCHEDULER_KEYS = ("scheduler_args", "scheduler_power", "min_lr_ratio")


def stale_keys(old: Mapping[str, Any], table: Mapping[str, Any]) -> list[str]:
    """The keys of the user's [optimizer] that the new one makes wrong: decided keys it leaves
    out, the old optimizer's `args` when the type changes, the old scheduler's settings when
    the scheduler changes."""
    gone = [k for k in DECIDED_KEYS if k in old and k not in table]

    def name(value: object) -> str:
        return canonical_optimizer(str(value)) or str(value).lower()

    if "type" in table and name(old.get("type", "AdamW8bit")) != name(table["type"]):
        gone += [k for k in _OPTIMIZER_KEYS if k in old]
    if "scheduler" in table and old.get("scheduler", "cosine_with_restarts") != table["scheduler"]:
        gone += [k for k in _SCHEDULER_KEYS if k in old]
    return gone


def new_plan_text(text: str, table: Mapping[str, Any], note: str) -> str:
    """The plan text with its [optimizer] set to `table`, and `note` as comment lines above it.

    Edited with tomlkit, so every other byte stays as the user wrote it: comments (also those
    inside [optimizer] and at the ends of its lines, whose column is kept), the order of keys
    and sections, blank lines. Keys already there change in place, new ones follow the last
    key of the section, stale ones (`stale_keys`) go. [optimizer] may be a table, an inline
    table, dotted keys, or missing (then it is added at the end). Raises ValueError when the
    result would not read back as exactly that change.
    """
    import tomlkit

    doc = tomlkit.parse(text)
    before = doc.unwrap()
    old = before.get("optimizer")
    if not isinstance(old, Mapping) and old is not None:
        msg = f"optimizer is {type(old).__name__}, not a table"
        raise ValueError(msg)
    gone = stale_keys(old or {}, table)
    lines = note.splitlines()
    if gone:
        lines.append(f"Removed with the previous optimizer or scheduler: {', '.join(gone)}.")
    comment = "".join(f"# {line}\n" for line in lines)
    if old is None:
        section = tomlkit.table()
        for key, value in table.items():
            section[key] = value
        # A blank line before the section, as between the user's own.
        blank = "" if not text.strip() or text.endswith("\n\n") else "\n"
        section.trivia.indent = ("\n" if text and not text.endswith("\n") else "") + blank
        section.trivia.indent += comment
        doc["optimizer"] = section
    else:
        optimizer = doc["optimizer"]
        for key in gone:
            del optimizer[key]
        for key, value in table.items():
            _set(optimizer, key, value)
        anchor = _first_item(doc, optimizer)
        anchor.trivia.indent = comment + anchor.trivia.indent
    new_text = doc.as_string()
    _check(text, new_text, table, gone)
    return new_text


def _set(section: Any, key: str, value: Any) -> None:
    """Set one key: in place if it is there (its end-of-line comment kept at its column), else
    after the last key of the section (before the comments and blank lines that end it)."""
    import tomlkit
    from tomlkit.items import Comment, InlineTable, Null, Table, Whitespace

    item = tomlkit.item(value)
    if key in section:
        old: Any = section.value.item(key) if isinstance(section, (Table, InlineTable)) else None
        if old is not None and old.trivia.comment:
            width = len(old.trivia.comment_ws) + len(old.as_string()) - len(item.as_string())
            item.trivia.comment_ws = " " * max(1, width)
        section[key] = item
        return
    body = getattr(section, "value", None)
    body = getattr(body, "body", None)
    if not isinstance(body, list):  # dotted keys: tomlkit places it beside its siblings
        section[key] = item
        return
    # The comments and blank lines that end the section belong (for the reader) to what
    # follows: set them aside as placeholders (indices stay valid), add the key, put them back.
    tail = []
    start = len(body)
    while start > 0 and body[start - 1][0] is None:
        if not isinstance(body[start - 1][1], (Comment, Whitespace, Null)):
            break
        start -= 1
    for index in range(start, len(body)):
        if not isinstance(body[index][1], Null):
            tail.append(body[index][1])
        body[index] = (None, Null())
    if isinstance(section, InlineTable):
        item.trivia.indent = " "  # `a = 1, b = 2`, whichever tomlkit draws it
    section[key] = item
    for kept in tail:
        section.append(None, kept)


def _first_item(doc: Any, optimizer: Any) -> Any:
    """The item whose line comes first in the [optimizer] part of the text: its header, the
    `optimizer = { ... }` line, or (dotted keys, a section split in several places) its first
    key."""
    from tomlkit.items import InlineTable, Table

    if isinstance(optimizer, InlineTable) or (
        isinstance(optimizer, Table) and not optimizer.is_super_table()
    ):
        return optimizer
    tables = (
        [optimizer]
        if isinstance(optimizer, Table)
        else [v for k, v in doc.body if k is not None and k.key == "optimizer"]
    )
    for table in tables:
        for key, child in table.value.body:
            if key is not None:
                return child
    return optimizer  # pragma: no cover - a section with no key at all


def _check(text: str, new_text: str, table: Mapping[str, Any], gone: Sequence[str]) -> None:
    """The new text reads back as the old one with exactly the [optimizer] change."""
    from kohya_plan.loading import loads_toml

    expected = loads_toml(text)
    optimizer = {k: v for k, v in dict(expected.get("optimizer", {})).items() if k not in gone}
    expected["optimizer"] = {**optimizer, **table}
    if loads_toml(new_text) != expected:
        msg = "the edited plan does not read back as the old one with the new [optimizer]"
        raise ValueError(msg)


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
