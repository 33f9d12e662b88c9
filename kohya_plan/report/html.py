"""`report.html`: one self-contained page per run, to pick the best epoch by looking (T24, T30).

`render_report` turns a `ReportData` into HTML (pure: stdlib only, charts as inline SVG,
images as base64 data URIs, no network resources).
"""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

from kohya_plan.report.charts import PALETTE, Series, esc, line_chart, value_label
from kohya_plan.summary import format_clock as clock

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kohya_plan.report.gather import ReportData, SampleImage


_GROUP_TAG = re.compile(r"lr/group\d+")


# --- rendering (pure) ------------------------------------------------------------------------


def human_bytes(size: int) -> str:
    """1536 → '1.5 KiB' (binary units, as the summary prints sizes)."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover


def _note(text: str, kind: str = "note") -> str:
    return f'<p class="{kind}">{esc(text)}</p>'


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def _stat(label: str, value: str, detail: str = "") -> str:
    extra = f'<div class="detail">{esc(detail)}</div>' if detail else ""
    return (
        f'<div class="stat"><div class="label">{esc(label)}</div>'
        f'<div class="value">{esc(value)}</div>{extra}</div>'
    )


def _summary_section(data: ReportData) -> str:
    summary = data.summary
    parts = []
    if data.summary_note:
        parts.append(_note(data.summary_note))
    if summary is None:
        why = (
            "not available: the run was never launched (no train.log)"
            if not data.log_present
            else "not available"
        )
        parts.append(_note(f"Summary {why}.", "missing"))
        return _section("summary", "Summary", "".join(parts))
    total = summary.steps_total if summary.steps_total is not None else "?"
    epochs = f"{summary.epochs_done or 0} / {summary.epochs_total}" if summary.epochs_total else "—"
    speed = f"{summary.seconds_per_step:.2f} s/step" if summary.seconds_per_step is not None else ""
    loss = summary.loss
    stats = [
        _stat("steps", f"{summary.steps_done} / {total}"),
        _stat("epochs", epochs),
        _stat("wall time", clock(summary.wall_s), speed),
    ]
    if loss.first is not None:
        change = "" if loss.change is None else f" ({loss.change * 100:+.1f} %)"
        stats.append(_stat("loss trend", f"{loss.trend}{change}", "first epoch → last epoch"))
        stats.append(
            _stat(
                "avr_loss",
                f"{value_label(loss.last or 0)}",
                f"first {value_label(loss.first)}, lowest "
                f"{value_label(loss.lowest or 0)} at step {loss.lowest_step}",
            )
        )
    parts.append(f'<div class="stats">{"".join(stats)}</div>')
    if loss.first is not None:
        parts.append(
            _note(
                "Loss alone says little about quality: compare the epochs' sample images "
                "and pick the epoch that looks best (T24, T30)."
            )
        )
    if summary.warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in summary.warnings[:10])
        parts.append(f'<div class="warnings"><h3>Warnings</h3><ul>{items}</ul></div>')
    cause = summary.cause
    if cause is not None and summary.outcome != "succeeded":
        lines = ""
        if cause.lines:
            lines = f'<pre class="log">{esc(chr(10).join(cause.lines[-12:]))}</pre>'
        advice = f'<p class="advice"><b>What to do:</b> {esc(cause.advice)}</p>'
        tail = (
            '<p class="note"><a href="#log">the end of train.log</a></p>' if data.log_tail else ""
        )
        parts.append(
            f'<div class="cause" id="cause"><h3>Cause: {esc(cause.kind)}</h3>'
            f"<p>{esc(cause.message)}</p>{lines}{advice if cause.advice else ''}"
            f"{tail}</div>"
        )
    if summary.stop_reason:
        ended = f"; the trainer ended {summary.escalation}" if summary.escalation else ""
        parts.append(_note(f"Stopped by {summary.stop_reason}{ended}."))
    return _section("summary", "Summary", "".join(parts))


def _row_key(item: SampleImage) -> tuple[int, int]:
    if item.epoch is not None:
        return (0, item.epoch)
    return (1, item.step or 0)


def _prompt_header(index: int, prompts: Sequence[str]) -> str:
    if index >= len(prompts):
        return f'<th class="prompt" scope="col">prompt {index + 1}</th>'
    text = prompts[index]
    main, _, options = text.partition(" --")
    opts = f'<div class="opts">--{esc(options)}</div>' if options else ""
    return (
        f'<th class="prompt" scope="col" data-prompt="{index}" title="{esc(text)}">'
        f'<div class="num">prompt {index + 1}</div><div class="text">{esc(main)}</div>'
        f"{opts}</th>"
    )


def _img_src(item: SampleImage) -> str:
    if item.data is not None:
        return "data:image/png;base64," + base64.b64encode(item.data).decode("ascii")
    return item.href or ""


def _samples_section(data: ReportData) -> str:
    parts = []
    if data.samples_note:
        parts.append(_note(data.samples_note, "missing" if not data.samples else "note"))
    if not data.samples:
        if not data.samples_note:
            parts.append(_note("No sample images.", "missing"))
        return _section("samples", "Sample images", "".join(parts))
    columns = max(
        max(s.prompt_index for s in data.samples) + 1, len(data.prompts) if data.prompts else 0
    )
    rows: dict[tuple[int, int], dict[int, SampleImage]] = {}
    for item in data.samples:
        rows.setdefault(_row_key(item), {})[item.prompt_index] = item
    losses = _epoch_loss_map(data)
    head = "".join(_prompt_header(i, data.prompts) for i in range(columns))
    body = []
    for (kind, number), cells in sorted(rows.items()):
        if kind == 0:
            title = "before training" if number == 0 else f"epoch {number}"
            info = []
            if number in losses:
                info.append(f"loss {value_label(losses[number])}")
            if number in data.epoch_files:
                info.append(data.epoch_files[number])
            attrs = f'data-epoch="{number}"'
        else:
            title = f"step {number}"
            info = []
            if data.steps_per_epoch:
                info.append(f"epoch {math.ceil(number / data.steps_per_epoch) or 0}")
            attrs = f'data-step="{number}"'
        detail = "".join(f'<div class="detail">{esc(i)}</div>' for i in info)
        row = [f'<tr {attrs}><th class="row" scope="row"><div>{esc(title)}</div>{detail}</th>']
        for index in range(columns):
            shown = cells.get(index)
            if shown is None:
                row.append('<td class="empty">—</td>')
                continue
            size = f"{shown.width}×{shown.height}, " if shown.width else ""
            tip = f"{title}, prompt {index + 1}: {size}{shown.name}"
            row.append(
                f'<td data-prompt="{index}"><img class="sample" src="{_img_src(shown)}" '
                f'alt="{esc(tip)}" title="{esc(tip)}" data-name="{esc(shown.name)}" '
                f'data-prompt="{index}"></td>'
            )
        row.append("</tr>")
        body.append("".join(row))
    controls = (
        '<div class="controls"><label>image size <input type="range" id="thumb" min="96" '
        'max="512" step="16" value="224"></label> <span class="hint">click an image to see '
        "it at full size</span></div>"
    )
    parts.append(
        f'{controls}<div class="grid-wrap"><table class="samples"><thead><tr>'
        f'<th class="corner"></th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )
    return _section("samples", "Sample images", "".join(parts))


def _epoch_loss_map(data: ReportData) -> dict[int, float]:
    tb = {int(x): y for x, y in data.scalars.get("loss/epoch_average", ())}
    return tb or dict(data.epoch_losses)


def _loss_section(data: ReportData) -> str:
    parts = []
    if data.tensorboard_note:
        parts.append(_note(data.tensorboard_note, "missing"))
    if not data.log_present:
        parts.append(_note("No train.log: the run was never launched.", "missing"))
    sc = data.scalars
    series = []
    if sc.get("loss/current"):
        series.append(
            Series("loss/current (TensorBoard)", sc["loss/current"], "#93c5fd", 1.2, markers=False)
        )
    if sc.get("loss/average"):
        series.append(Series("loss/average (TensorBoard)", sc["loss/average"], PALETTE[0], 2.4))
    if data.loss_points:
        series.append(Series("avr_loss (train.log)", data.loss_points, PALETTE[3], 1.6, dash="6 4"))
    if sc.get("loss/validation/step_average"):
        series.append(
            Series("validation loss", sc["loss/validation/step_average"], PALETTE[4], 2.0)
        )
    marks = []
    if data.steps_per_epoch and data.epochs_total and data.epochs_total <= 40:
        marks = [(float(e * data.steps_per_epoch), f"e{e}") for e in range(1, data.epochs_total)]
    chart = line_chart(
        "chart-loss-step",
        "Loss per step",
        series,
        x_label="step",
        y_label="loss",
        marks=marks,
    )
    parts.append("<h3>Per step</h3>")
    parts.append(
        f"<figure>{chart}</figure>" if chart else _note("Loss per step: not available.", "missing")
    )
    epoch_series = []
    tb = sc.get("loss/epoch_average") or ()
    if tb:
        epoch_series.append(
            Series(
                "loss/epoch_average (TensorBoard)", tb, PALETTE[0], 2.4, markers=True, labels=True
            )
        )
    if data.epoch_losses:
        epoch_series.append(
            Series(
                "avr_loss at epoch end (train.log)",
                sorted(data.epoch_losses.items()),
                PALETTE[3],
                1.6,
                dash="6 4",
                markers=True,
                labels=not tb,
            )
        )
    if sc.get("loss/validation/epoch_average"):
        epoch_series.append(
            Series(
                "validation loss",
                sc["loss/validation/epoch_average"],
                PALETTE[4],
                2.0,
                markers=True,
            )
        )
    chart = line_chart(
        "chart-loss-epoch",
        "Loss per epoch",
        epoch_series,
        x_label="epoch",
        y_label="loss",
        integer_x=True,
        height=300,
    )
    parts.append("<h3>Per epoch</h3>")
    parts.append(
        f"<figure>{chart}</figure>"
        if chart
        else _note("Loss per epoch: not available (no epoch finished).", "missing")
    )
    parts.append(_epoch_table(data))
    return _section("loss", "Loss", "".join(parts))


def _epoch_table(data: ReportData) -> str:
    tb = {int(x): y for x, y in data.scalars.get("loss/epoch_average", ())}
    log = dict(data.epoch_losses)
    epochs = sorted(set(tb) | set(log) | set(data.epoch_files))
    if not epochs:
        return ""
    sizes = {f.epoch: f for f in data.files if f.epoch is not None}
    rows = []
    for epoch in epochs:
        file = sizes.get(epoch)
        rows.append(
            f'<tr data-epoch="{epoch}"><td class="num">{epoch}</td>'
            f'<td class="num">{esc(value_label(tb[epoch])) if epoch in tb else "—"}</td>'
            f'<td class="num">{esc(value_label(log[epoch])) if epoch in log else "—"}</td>'
            f"<td>{esc(data.epoch_files.get(epoch, '—'))}</td>"
            f'<td class="num">{esc(human_bytes(file.bytes)) if file else "—"}</td></tr>'
        )
    return (
        '<table class="data epochs"><thead><tr><th>epoch</th>'
        "<th>loss/epoch_average (TensorBoard)</th><th>avr_loss (train.log)</th>"
        f"<th>LoRA file</th><th>size</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _lr_section(data: ReportData) -> str:
    sc = data.scalars
    tags = [t for t in sc if t.startswith("lr/") and not t.startswith("lr/d*lr")]
    named = [t for t in tags if not _GROUP_TAG.fullmatch(t)]
    tags = named or tags
    dlr = [t for t in sc if t.startswith("lr/d*lr")]
    named_d = [t for t in dlr if not re.fullmatch(r"lr/d\*lr/group\d+", t)]
    dlr = named_d or dlr
    parts = []
    colors = iter(PALETTE * 3)
    chart = line_chart(
        "chart-lr",
        "Learning rate",
        [Series(t, sc[t], next(colors), 2.0) for t in sorted(tags)],
        x_label="step",
        y_label="learning rate" if not dlr else "lr (multiplier for D-Adaptation/Prodigy)",
        y_from_zero=True,
    )
    parts.append(
        f"<figure>{chart}</figure>"
        if chart
        else _note(
            "Learning rate: not available"
            + (" (no TensorBoard logs)." if not sc else " (no lr/ tags)."),
            "missing",
        )
    )
    if dlr:
        colors = iter(PALETTE * 3)
        chart = line_chart(
            "chart-dlr",
            "Effective learning rate (d·lr)",
            [Series(t, sc[t], next(colors), 2.0) for t in sorted(dlr)],
            x_label="step",
            y_label="d × lr",
            y_from_zero=True,
        )
        parts.append(f"<h3>Effective learning rate (d·lr)</h3><figure>{chart}</figure>")
    return _section("lr", "Learning rate", "".join(parts))


def _files_section(data: ReportData) -> str:
    if not data.files:
        text = (
            "No LoRA file was saved."
            if data.summary is not None
            else "LoRA files: not available (no summary yet)."
        )
        return _section("files", "LoRA files", _note(text, "missing"))
    rows = []
    for f in data.files:
        missing = "" if f.exists else ' <span class="bad">(missing now)</span>'
        note = f'<div class="detail">{esc(f.note)}</div>' if f.note else ""
        rows.append(
            f'<tr data-epoch="{"" if f.epoch is None else f.epoch}"><td>{esc(f.label)}</td>'
            f'<td><span class="path" title="{esc(f.path)}">{esc(f.name)}</span>{missing}'
            f'{note}</td><td class="num">{esc(human_bytes(f.bytes))}</td>'
            f'<td class="num">{f.bytes:,} bytes</td></tr>'
        )
    folder = str(Path(data.files[0].path).parent)
    return _section(
        "files",
        "LoRA files",
        f'<p class="note">in {esc(folder)}</p><table class="data"><thead><tr><th>what</th>'
        f"<th>file</th><th>size</th><th>bytes</th></tr></thead><tbody>{''.join(rows)}"
        "</tbody></table>",
    )


def _cell(value: int | None) -> str:
    return "?" if value is None else str(value)


def _dataset_section(data: ReportData) -> str:
    parts = []
    if data.dataset_note:
        parts.append(_note(data.dataset_note))
    if data.subsets:
        rows = []
        for s in data.subsets:
            kind = "regularization" if s.is_reg else "training"
            rows.append(
                f'<tr><td class="path">{esc(s.folder)}</td><td>{kind}</td>'
                f'<td class="num">{_cell(s.repeats)}</td><td class="num">{_cell(s.images)}</td>'
                f'<td class="num">{_cell(s.captions)}</td>'
                f'<td class="num">{_cell(s.found_by_trainer)}</td></tr>'
            )
        parts.append(
            '<table class="data"><thead><tr><th>folder</th><th>kind</th><th>repeats</th>'
            "<th>images</th><th>captions</th><th>images sd-scripts found</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    else:
        parts.append(_note("Dataset: not available.", "missing"))
    if data.dataset_facts:
        rows = []
        for label, planned, logged in data.dataset_facts:
            differs = planned is not None and logged is not None and planned != logged
            cls = ' class="bad"' if differs else ""
            rows.append(
                f"<tr{cls}><th>{esc(label)}</th><td class='num'>{_cell(planned)}</td>"
                f"<td class='num'>{_cell(logged)}</td></tr>"
            )
        parts.append(
            '<h3>Steps</h3><table class="data facts"><thead><tr><th></th>'
            "<th>kohya-plan (check)</th><th>sd-scripts (train.log)</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    return _section("dataset", "Dataset", "".join(parts))


def _plan_section(data: ReportData) -> str:
    parts = []
    if data.command:
        cwd = f'<p class="note">run from {esc(data.command_cwd)}</p>' if data.command_cwd else ""
        parts.append(f'<h3>Command</h3>{cwd}<pre class="command">{esc(data.command)}</pre>')
    else:
        parts.append(_note("Command: not available (no command.sh or launch.json).", "missing"))
    if data.advice_note:
        parts.append(_note(data.advice_note, "missing"))
    if data.advice:
        items = []
        for a in data.advice:
            waived = " (waived)" if a.waived else ""
            where = f"<code>{esc(a.field)}</code>: " if a.field else ""
            fix = f" — {esc(a.fix)}" if a.fix else ""
            items.append(
                f'<li class="{esc(a.severity)}"><span class="rule">{esc(a.id)}'
                f"{esc(waived)}</span> {where}{esc(a.message)}{fix}</li>"
            )
        parts.append(f'<h3>Advice (kohya-plan check)</h3><ul class="advice">{"".join(items)}</ul>')
    elif data.advice_note is None and data.plan_text is not None:
        parts.append(_note("kohya-plan check has no advice for this plan."))
    if data.plan_note:
        parts.append(_note(data.plan_note, "missing"))
    if data.plan_text is not None:
        parts.append(
            "<details><summary>plan.toml (the validated plan)</summary>"
            f'<pre class="plan">{esc(data.plan_text)}</pre></details>'
        )
    return _section("plan", "Plan and command", "".join(parts))


def _log_section(data: ReportData) -> str:
    if not data.log_tail:
        return ""
    open_ = " open" if data.outcome not in ("succeeded",) else ""
    return _section(
        "log",
        "End of train.log",
        f"<details{open_}><summary>last {len(data.log_tail)} lines</summary>"
        f'<pre class="log">{esc(chr(10).join(data.log_tail))}</pre></details>',
    )


_CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--card:#fff;--thumb:224px;
--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;
color:var(--fg);background:var(--bg)}
header{background:#0f172a;color:#f8fafc;padding:20px 32px 14px}
header h1{margin:0;font-size:24px;font-weight:650;display:flex;gap:14px;align-items:center;
flex-wrap:wrap}
header .sub{color:#cbd5e1;font-size:13px;margin-top:4px;word-break:break-all}
nav{margin-top:12px;display:flex;gap:16px;flex-wrap:wrap;font-size:14px}
nav a{color:#93c5fd;text-decoration:none}nav a:hover{text-decoration:underline}
.badge{font-size:13px;font-weight:700;padding:3px 10px;border-radius:999px;
text-transform:uppercase;letter-spacing:.04em}
.badge.succeeded{background:#16a34a;color:#fff}.badge.failed{background:#dc2626;color:#fff}
.badge.stopped{background:#d97706;color:#fff}.badge.incomplete,.badge.not-launched{
background:#64748b;color:#fff}
main{padding:8px 32px 48px;max-width:1800px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:16px 22px 20px;margin:18px 0;box-shadow:0 1px 2px rgba(0,0,0,.04)}
h2{margin:0 0 10px;font-size:19px}h3{margin:16px 0 8px;font-size:15px;color:#374151}
.note{color:var(--muted);font-size:13.5px;margin:6px 0}
.missing{color:#92400e;background:#fffbeb;border:1px solid #fde68a;border-radius:6px;
padding:8px 12px;font-size:14px;margin:8px 0}
.stats{display:flex;gap:12px;flex-wrap:wrap;margin:6px 0 10px}
.stat{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:150px;
background:#f9fafb}
.stat .label{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.stat .value{font-size:20px;font-weight:650}.stat .detail{font-size:12.5px;color:var(--muted)}
.cause{border:1px solid #fecaca;background:#fef2f2;border-radius:8px;padding:4px 16px 10px;
margin-top:12px}.cause h3{color:#b91c1c}
.warnings{border:1px solid #fde68a;background:#fffbeb;border-radius:8px;padding:2px 16px;
margin-top:10px}
pre{background:#0f172a;color:#e2e8f0;padding:12px 14px;border-radius:8px;overflow:auto;
font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;max-height:520px}
pre.command,pre.log{white-space:pre-wrap;word-break:break-all}
figure{margin:4px 0 8px}
svg.chart{width:100%;max-width:1100px;height:auto;display:block;
font-family:system-ui,sans-serif}
svg.chart .plot{fill:#fff;stroke:none}svg.chart .grid{stroke:#eef0f3}
svg.chart .axis{stroke:#9ca3af}svg.chart .tick{font-size:12px;fill:#4b5563}
svg.chart .axis-label{font-size:13px;fill:#374151;font-weight:600}
svg.chart .legend text{font-size:12.5px;fill:#374151}
svg.chart .value{font-size:11.5px;font-weight:600}
svg.chart .mark{stroke:#cbd5e1;stroke-dasharray:3 4}
svg.chart .mark-label{font-size:10.5px;fill:#94a3b8}
table.data{border-collapse:collapse;font-size:14px;margin:8px 0}
table.data th,table.data td{border-bottom:1px solid var(--line);padding:6px 12px;
text-align:left;vertical-align:top}
table.data th{font-size:12.5px;color:var(--muted);font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.path,span.path{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;
word-break:break-all}
table.facts{border-collapse:collapse;font-size:13.5px;margin-top:8px}
table.facts th{text-align:left;font-weight:500;color:var(--muted);padding:2px 16px 2px 0}
.detail{font-size:12px;color:var(--muted);font-weight:400}
.bad{color:#b91c1c}
.controls{margin:4px 0 10px;font-size:13.5px;color:var(--muted)}
.controls input{vertical-align:middle}
.grid-wrap{overflow-x:auto}
table.samples{border-collapse:separate;border-spacing:6px}
table.samples th.prompt{width:var(--thumb);min-width:var(--thumb);max-width:var(--thumb);
vertical-align:bottom;text-align:left;font-weight:500;font-size:13px;padding:4px}
th.prompt .num{font-size:11px;text-transform:uppercase;color:var(--muted);letter-spacing:.04em}
th.prompt .text{display:-webkit-box;-webkit-line-clamp:3;-webkit-box-orient:vertical;
overflow:hidden}
th.prompt .opts{font-size:11px;color:var(--muted);overflow:hidden;text-overflow:ellipsis;
white-space:nowrap}
table.samples th.row{text-align:right;vertical-align:middle;padding-right:8px;
white-space:nowrap;font-size:14px;position:sticky;left:0;background:var(--card);z-index:1}
table.samples td{padding:0;vertical-align:top}
table.samples td.empty{width:var(--thumb);height:var(--thumb);text-align:center;
vertical-align:middle;color:#9ca3af;background:#f3f4f6;border-radius:6px}
img.sample{width:var(--thumb);height:auto;display:block;border-radius:6px;cursor:zoom-in;
background:#f3f4f6;image-rendering:auto}
img.sample:hover{outline:3px solid var(--accent)}
ul.advice{padding-left:20px}ul.advice li{margin:4px 0}
ul.advice .rule{font-family:ui-monospace,Menlo,monospace;font-size:12px;background:#eef2ff;
color:#3730a3;border-radius:4px;padding:1px 6px}
ul.advice li.error .rule{background:#fee2e2;color:#991b1b}
details summary{cursor:pointer;color:var(--accent);margin:6px 0}
main a{color:var(--accent)}
#lightbox{position:fixed;inset:0;background:rgba(15,23,42,.88);display:none;
align-items:center;justify-content:center;flex-direction:column;z-index:10;cursor:zoom-out}
#lightbox.open{display:flex}#lightbox img{max-width:94vw;max-height:86vh;
image-rendering:auto;border-radius:6px}
#lightbox div{color:#e2e8f0;margin-top:10px;font-size:14px}
footer{color:var(--muted);font-size:12px;padding:0 32px 24px}
"""

_SCRIPT = """
(function(){
function mark(){var n=0,imgs=document.querySelectorAll('img');
for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0)n++;}
document.body.setAttribute('data-images-loaded',String(n));
document.body.setAttribute('data-images',String(imgs.length));
document.body.setAttribute('data-charts',String(document.querySelectorAll('svg.chart').length));}
window.addEventListener('load',mark);
var r=document.getElementById('thumb');
if(r){r.addEventListener('input',function(){
document.documentElement.style.setProperty('--thumb',r.value+'px');});}
var box=null;
document.addEventListener('click',function(e){var t=e.target;
if(t&&t.classList&&t.classList.contains('sample')){
if(!box){box=document.createElement('div');box.id='lightbox';
box.innerHTML='<span></span><div></div>';document.body.appendChild(box);
box.addEventListener('click',function(){box.className='';});}
var big=new Image();big.src=t.src;box.replaceChild(big,box.firstChild);
box.lastChild.textContent=t.title;box.className='open';}});
document.addEventListener('keydown',function(e){if(e.key==='Escape'&&box)box.className='';});
})();
"""


def render_report(data: ReportData) -> str:
    """The whole page (pure): everything inline, no network resources."""
    outcome = data.outcome
    badge = outcome.replace(" ", "-")
    title = f"{data.output_name} — {outcome}"
    sections: list[Callable[[ReportData], str]] = [
        _summary_section,
        _samples_section,
        _loss_section,
        _lr_section,
        _files_section,
        _dataset_section,
        _plan_section,
        _log_section,
    ]
    nav = "".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("summary", "Summary"),
            ("samples", "Samples"),
            ("loss", "Loss"),
            ("lr", "Learning rate"),
            ("files", "LoRA files"),
            ("dataset", "Dataset"),
            ("plan", "Plan"),
        )
    )
    if data.summary is not None and data.summary.cause is not None and outcome != "succeeded":
        nav = '<a href="#cause">Cause</a>' + nav
    if outcome not in ("succeeded", "not launched"):  # what went wrong comes first
        sections.remove(_log_section)
        sections.insert(1, _log_section)
    body = "".join(render(data) for render in sections)
    csp = (
        "default-src 'none'; img-src data: file: 'self'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n"
        f'<body data-outcome="{esc(outcome)}"><header><h1>{esc(data.output_name)} '
        f'<span class="badge {esc(badge)}">{esc(outcome)}</span></h1>'
        f'<div class="sub">run folder {esc(data.run_dir)}</div><nav>{nav}</nav></header>\n'
        f"<main>{body}</main>\n"
        f"<footer>made by kohya-plan on {esc(data.generated_at)}</footer>\n"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
