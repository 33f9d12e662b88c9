"""`report.html`: one self-contained page per run, to pick the best epoch by looking (T24, T30).

`render_report` turns a `ReportData` into HTML through the Jinja2 template
`templates/report.html.j2` (autoescaped: every text of the run, prompt or path is escaped unless
the code marks it safe, which only the charts' SVG is). This module decides what the page shows
(which series go in which chart, the sample grid's rows and columns); the template decides how.
The page needs no network: CSS and script inline, charts as inline SVG (matplotlib), images as
base64 data URIs (or, for very large sets, links beside the page).
"""

from __future__ import annotations

import base64
import functools
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from kohya_plan.report.charts import PALETTE, Chart, Series, line_chart, value_label, x_text
from kohya_plan.summary import format_clock

if TYPE_CHECKING:
    from collections.abc import Sequence

    import jinja2

    from kohya_plan.report.gather import ReportData
    from kohya_plan.report.samples import SampleImage

TEMPLATE = "report.html.j2"
_GROUP_TAG = re.compile(r"lr/group\d+")
_DLR_GROUP_TAG = re.compile(r"lr/d\*lr/group\d+")
# The page loads nothing from anywhere: inline style and script, images inline or beside it.
CSP = (
    "default-src 'none'; img-src data: file: 'self'; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'"
)
NAV = (
    ("summary", "Summary"),
    ("samples", "Samples"),
    ("loss", "Loss"),
    ("lr", "Learning rate"),
    ("files", "LoRA files"),
    ("dataset", "Dataset"),
    ("plan", "Plan"),
)
SECTIONS = ("summary", "samples", "loss", "lr", "files", "dataset", "plan", "log")


def human_bytes(size: int) -> str:
    """1536 → '1.5 KiB' (binary units, as the summary prints sizes)."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover


# --- the sample grid -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromptColumn:
    """A column of the sample grid: one prompt (its text apart from its --options)."""

    index: int
    text: str | None  # None: more images than prompts (prompts.txt missing or changed)
    main: str = ""
    options: str = ""


@dataclass(frozen=True, slots=True)
class SampleCell:
    """One image of the grid."""

    src: str
    tip: str
    name: str


@dataclass(frozen=True, slots=True)
class SampleRow:
    """One row of the grid: an epoch (0 = before training) or a step."""

    kind: str  # "epoch" or "step"
    number: int
    title: str
    info: tuple[str, ...]
    cells: tuple[SampleCell | None, ...]


def _img_src(item: SampleImage) -> str:
    """A data: URI (marked safe: base64 needs no escaping, and escaping 50 MB of it would
    double the page's rendering time), else the link beside the page (escaped as usual)."""
    if item.data is not None:
        from markupsafe import Markup

        return Markup("data:image/png;base64," + base64.b64encode(item.data).decode("ascii"))
    return item.href or ""


def epoch_losses(data: ReportData) -> dict[int, float]:
    """The loss per epoch: TensorBoard's epoch average, else the log's avr_loss at epoch end."""
    tb = {int(x): y for x, y in data.scalars.get("loss/epoch_average", ())}
    return tb or dict(data.epoch_losses)


def prompt_columns(data: ReportData) -> list[PromptColumn]:
    """The grid's columns: every prompt, and every prompt index an image has."""
    if not data.samples:
        return []
    count = max(max(s.prompt_index for s in data.samples) + 1, len(data.prompts))
    columns = []
    for index in range(count):
        if index >= len(data.prompts):
            columns.append(PromptColumn(index, None))
            continue
        text = data.prompts[index]
        main, _, options = text.partition(" --")
        columns.append(PromptColumn(index, text, main, f"--{options}" if options else ""))
    return columns


def sample_rows(data: ReportData, columns: int) -> list[SampleRow]:
    """The grid's rows, epochs first then steps, each with its images by prompt."""
    grouped: dict[tuple[int, int], dict[int, SampleImage]] = {}
    for item in data.samples:
        key = (0, item.epoch) if item.epoch is not None else (1, item.step or 0)
        grouped.setdefault(key, {})[item.prompt_index] = item
    losses = epoch_losses(data)
    rows = []
    for (kind, number), images in sorted(grouped.items()):
        info = []
        if kind == 0:
            title = "before training" if number == 0 else f"epoch {number}"
            if number in losses:
                info.append(f"loss {value_label(losses[number])}")
            if number in data.epoch_files:
                info.append(data.epoch_files[number])
        else:
            title = f"step {number}"
            if data.steps_per_epoch:
                info.append(f"epoch {math.ceil(number / data.steps_per_epoch) or 0}")
        cells: list[SampleCell | None] = []
        for index in range(columns):
            shown = images.get(index)
            if shown is None:
                cells.append(None)
                continue
            size = f"{shown.width}×{shown.height}, " if shown.width else ""
            tip = f"{title}, prompt {index + 1}: {size}{shown.name}"
            cells.append(SampleCell(_img_src(shown), tip, shown.name))
        rows.append(
            SampleRow("epoch" if kind == 0 else "step", number, title, tuple(info), tuple(cells))
        )
    return rows


# --- charts ----------------------------------------------------------------------------------


def loss_step_chart(data: ReportData) -> Chart | None:
    """Loss per step: TensorBoard's current and average loss, the log's avr_loss, validation."""
    sc = data.scalars
    series = []
    if sc.get("loss/current"):
        series.append(
            Series("loss/current (TensorBoard)", sc["loss/current"], "#93c5fd", 1.2, markers=False)
        )
    if sc.get("loss/average"):
        series.append(Series("loss/average (TensorBoard)", sc["loss/average"], PALETTE[0], 2.4))
    if data.loss_points:
        series.append(
            Series("avr_loss (train.log)", data.loss_points, PALETTE[3], 1.6, dash=(6, 4))
        )
    if sc.get("loss/validation/step_average"):
        series.append(
            Series("validation loss", sc["loss/validation/step_average"], PALETTE[4], 2.0)
        )
    marks: list[tuple[float, str]] = []
    if data.steps_per_epoch and data.epochs_total and data.epochs_total <= 40:
        marks = [(float(e * data.steps_per_epoch), f"e{e}") for e in range(1, data.epochs_total)]
    return line_chart(
        "chart-loss-step", "Loss per step", series, x_label="step", y_label="loss", marks=marks
    )


def loss_epoch_chart(data: ReportData) -> Chart | None:
    """Loss per epoch, with its value above each point."""
    sc = data.scalars
    series = []
    tb = sc.get("loss/epoch_average") or ()
    if tb:
        series.append(
            Series(
                "loss/epoch_average (TensorBoard)", tb, PALETTE[0], 2.4, markers=True, labels=True
            )
        )
    if data.epoch_losses:
        series.append(
            Series(
                "avr_loss at epoch end (train.log)",
                sorted(data.epoch_losses.items()),
                PALETTE[3],
                1.6,
                dash=(6, 4),
                markers=True,
                labels=not tb,
            )
        )
    if sc.get("loss/validation/epoch_average"):
        series.append(
            Series(
                "validation loss",
                sc["loss/validation/epoch_average"],
                PALETTE[4],
                2.0,
                markers=True,
            )
        )
    return line_chart(
        "chart-loss-epoch",
        "Loss per epoch",
        series,
        x_label="epoch",
        y_label="loss",
        integer_x=True,
        height=300,
    )


def lr_tags(scalars: Sequence[str]) -> tuple[list[str], list[str]]:
    """The learning-rate tags and the adaptive optimizers' d*lr tags, by name when sd-scripts
    named them (lr/unet, lr/textencoder) rather than numbered them (lr/group0 duplicates)."""
    tags = [t for t in scalars if t.startswith("lr/") and not t.startswith("lr/d*lr")]
    named = [t for t in tags if not _GROUP_TAG.fullmatch(t)]
    dlr = [t for t in scalars if t.startswith("lr/d*lr")]
    named_d = [t for t in dlr if not _DLR_GROUP_TAG.fullmatch(t)]
    return sorted(named or tags), sorted(named_d or dlr)


def lr_charts(data: ReportData) -> tuple[Chart | None, Chart | None]:
    """The learning rate by group, and (D-Adaptation, Prodigy) the effective d × lr."""
    sc = data.scalars
    tags, dlr = lr_tags(list(sc))
    lr = line_chart(
        "chart-lr",
        "Learning rate",
        [Series(t, sc[t], PALETTE[i % len(PALETTE)]) for i, t in enumerate(tags)],
        x_label="step",
        y_label="learning rate" if not dlr else "lr (multiplier for D-Adaptation/Prodigy)",
        y_from_zero=True,
    )
    effective = None
    if dlr:
        effective = line_chart(
            "chart-dlr",
            "Effective learning rate (d·lr)",
            [Series(t, sc[t], PALETTE[i % len(PALETTE)]) for i, t in enumerate(dlr)],
            x_label="step",
            y_label="d × lr",
            y_from_zero=True,
        )
    return lr, effective


@dataclass(frozen=True, slots=True)
class EpochRow:
    """A row of the loss-per-epoch table."""

    epoch: int
    tensorboard: float | None
    log: float | None
    file: str | None
    bytes: int | None


def _epoch_rows(data: ReportData) -> list[EpochRow]:
    tb = {int(x): y for x, y in data.scalars.get("loss/epoch_average", ())}
    log = dict(data.epoch_losses)
    sizes = {f.epoch: f.bytes for f in data.files if f.epoch is not None}
    return [
        EpochRow(e, tb.get(e), log.get(e), data.epoch_files.get(e), sizes.get(e))
        for e in sorted(set(tb) | set(log) | set(data.epoch_files))
    ]


# --- the page --------------------------------------------------------------------------------


def _load(name: str) -> str:
    return (resources.files("kohya_plan.report") / "templates" / name).read_text(encoding="utf-8")


@functools.cache
def environment() -> jinja2.Environment:
    """The report's Jinja2 environment: templates from the package, autoescaped, strict."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(sig=value_label, size=human_bytes, clock=format_clock, x=x_text)
    return env


def render_report(data: ReportData) -> str:
    """The whole page (pure): everything inline, no network resources."""
    outcome = data.outcome
    summary = data.summary
    cause = summary.cause if summary is not None and outcome != "succeeded" else None
    sections = list(SECTIONS)
    if outcome not in ("succeeded", "not launched"):  # what went wrong comes first
        sections.remove("log")
        sections.insert(1, "log")
    columns = prompt_columns(data)
    lr, dlr = lr_charts(data)
    template = environment().get_template(TEMPLATE)
    return template.render(
        data=data,
        outcome=outcome,
        badge=outcome.replace(" ", "-"),
        csp=CSP,
        nav=([("cause", "Cause")] if cause is not None else []) + list(NAV),
        sections=sections,
        summary=summary,
        columns=columns,
        rows=sample_rows(data, len(columns)),
        loss_step=loss_step_chart(data),
        loss_epoch=loss_epoch_chart(data),
        epoch_rows=_epoch_rows(data),
        lr_chart=lr,
        dlr_chart=dlr,
        files_folder=str(Path(data.files[0].path).parent) if data.files else "",
    )
