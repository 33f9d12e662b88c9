"""`kohya-plan compare RUN_DIR… | SWEEP_DIR`: compare.html, the runs side by side.

The tutorial's last step (T30: an X/Y grid of sample images to pick the best LoRA) done for you:
for each prompt, the runs' samples by epoch (same prompt and seed, so the settings are what
differs), the loss per epoch of every run in one chart, the settings in which the runs differ
as their labels, and each LoRA file's size. Every run is read by the report's own reader
(`report.gather`): nothing is parsed again here. With exactly two differing settings the final
epoch is also shown as the tutorial's X/Y grid (one setting across, the other down).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_plan import rundir
from kohya_plan.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from kohya_plan.report.charts import Chart
    from kohya_plan.report.gather import ReportData
    from kohya_plan.report.samples import SampleImage

TEMPLATE = "compare.html.j2"
# Plan keys that differ between any two runs without being a setting worth comparing.
_NOT_SETTINGS = ("output.name", "output.runs_dir", "model.tokenizer_cache_dir", "sweep")


@dataclass(frozen=True)
class CompareRun:
    """One run of the comparison: its report data and what sets it apart."""

    index: int
    run_dir: Path
    data: ReportData
    settings: dict[str, str]  # differing key → its value as written

    @property
    def final_bytes(self) -> int | None:
        """The size of the run's final LoRA file (None when it saved none)."""
        finals = [
            f for f in self.data.files if f.label.startswith("final") and f.label != "final copy"
        ]
        return finals[0].bytes if finals else None

    @property
    def label(self) -> str:
        """The run's label: its differing settings ("unet_lr 1e-4, dim 16")."""
        if not self.settings:
            return self.run_dir.name
        return ", ".join(
            f"{key.rsplit('.', 1)[-1]} {value}" for key, value in self.settings.items()
        )


@dataclass(frozen=True)
class PromptGrid:
    """One prompt: the runs' samples by epoch (or step)."""

    index: int
    text: str | None
    seeds: tuple[int | None, ...]  # the seeds the runs' images were made with
    columns: tuple[str, ...]  # "epoch 1", "step 100", "before training"
    rows: tuple[tuple[CompareRun, tuple[SampleImage | None, ...]], ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class XYGrid:
    """The final epoch's images of one prompt, one setting across and the other down."""

    prompt: int
    x_key: str
    y_key: str
    x_values: tuple[str, ...]
    y_values: tuple[str, ...]
    cells: tuple[tuple[SampleImage | None, ...], ...]
    epoch: int


@dataclass(frozen=True)
class CompareData:
    """Everything compare.html shows."""

    title: str
    runs: tuple[CompareRun, ...]
    keys: tuple[str, ...]  # the settings in which the runs differ
    prompts: tuple[PromptGrid, ...]
    xy: tuple[XYGrid, ...] = ()
    notes: tuple[str, ...] = field(default=())
    generated_at: str = ""


# --- which runs ------------------------------------------------------------------------------


def runs_of(targets: Sequence[Path]) -> tuple[list[Path], Path | None]:
    """The run folders to compare, and the sweep folder when one was given."""
    from kohya_plan.workflows.sweep import is_sweep_dir, load_sweep, read_queue

    paths = [t.expanduser().absolute() for t in targets]
    if len(paths) == 1 and is_sweep_dir(paths[0]):
        sweep = load_sweep(paths[0])
        queue = {item.index: item.run_dir for item in read_queue(sweep)}
        return [queue.get(p.index, d) for p, d in zip(sweep.points, sweep.run_dirs, strict=True)], (
            sweep.path
        )
    if len(paths) < 2:
        msg = "compare needs two run folders or more, or one sweep folder"
        raise UsageError(msg)
    for path in paths:
        rundir.RunDir(path).require_made()
    return paths, None


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "extra" and key != "args":
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "—"
    return str(value)


def differing_settings(plans: Sequence[Mapping[str, Any]]) -> list[str]:
    """The plan keys whose values are not the same in every plan (in the plans' order)."""
    flats = [_flat(p) for p in plans]
    keys: dict[str, None] = {}
    for flat in flats:
        for key in flat:
            keys.setdefault(key, None)
    differ = []
    for key in keys:
        if key.startswith(_NOT_SETTINGS):
            continue
        if len({repr(f.get(key)) for f in flats}) > 1:
            differ.append(key)
    return differ


# --- gathering -------------------------------------------------------------------------------


def gather_compare(targets: Sequence[Path], *, embed_limit: int | None = None) -> CompareData:
    """Read every run with the report's reader and line them up."""
    from kohya_plan.loading import loads_toml
    from kohya_plan.report.gather import gather
    from kohya_plan.report.samples import EMBED_LIMIT

    run_dirs, sweep = runs_of(targets)
    limit = (EMBED_LIMIT if embed_limit is None else embed_limit) // max(1, len(run_dirs))
    datas = [gather(path, embed_limit=limit) for path in run_dirs]
    plans: list[Mapping[str, Any]] = []
    for data in datas:
        try:
            plans.append(loads_toml(data.plan_text) if data.plan_text else {})
        except ValueError:
            plans.append({})
    keys = _axis_keys(sweep, plans)
    flats = [_flat(p) for p in plans]
    written = _grid_texts(sweep, len(run_dirs))
    runs = tuple(
        CompareRun(i, path, data, {k: written[i].get(k) or _text(flat.get(k)) for k in keys})
        for i, (path, data, flat) in enumerate(zip(run_dirs, datas, flats, strict=True))
    )
    notes = []
    if not keys:
        notes.append("the runs' plans are the same: they differ only by chance (seeds, order)")
    title = f"sweep {sweep.name}" if sweep is not None else f"{len(runs)} runs"
    return CompareData(
        title=title,
        runs=runs,
        keys=tuple(keys),
        prompts=tuple(_prompt_grids(runs)),
        xy=tuple(_xy_grids(runs, keys)),
        notes=tuple(notes),
        generated_at=time.strftime("%Y-%m-%d %H:%M:%S"),
    )


def _axis_keys(sweep: Path | None, plans: Sequence[Mapping[str, Any]]) -> list[str]:
    """A sweep's grid keys (in its order), else the keys in which the plans differ."""
    differing = differing_settings(plans)
    if sweep is None:
        return differing
    from kohya_plan.workflows.sweep import load_sweep

    axes = [a.key for a in load_sweep(sweep).axes]
    return axes + [k for k in differing if k not in axes]


def _grid_texts(sweep: Path | None, count: int) -> list[dict[str, str]]:
    """A sweep's values as the user wrote them ("1e-4", not 0.0001), point by point."""
    if sweep is None:
        return [{} for _ in range(count)]
    from kohya_plan.workflows.sweep import load_sweep

    made = load_sweep(sweep)
    texts: list[dict[str, str]] = []
    for point in made.points:
        shown = {}
        for axis in made.axes:
            value = point.values.get(axis.key)
            matches = [t for v, t in zip(axis.values, axis.texts, strict=True) if v == value]
            if matches:
                shown[axis.key] = matches[0]
        texts.append(shown)
    return texts + [{} for _ in range(count - len(texts))]


def _column_key(item: SampleImage) -> tuple[int, int]:
    return (0, item.epoch) if item.epoch is not None else (1, item.step or 0)


def _column_title(key: tuple[int, int]) -> str:
    kind, number = key
    if kind == 1:
        return f"step {number}"
    return "before training" if number == 0 else f"epoch {number}"


def _prompt_grids(runs: Sequence[CompareRun]) -> list[PromptGrid]:
    count = max(
        [len(r.data.prompts) for r in runs]
        + [max((s.prompt_index for s in r.data.samples), default=-1) + 1 for r in runs]
    )
    grids = []
    for index in range(count):
        texts = {r.data.prompts[index] for r in runs if index < len(r.data.prompts)}
        columns = sorted(
            {_column_key(s) for r in runs for s in r.data.samples if s.prompt_index == index}
        )
        rows = []
        seeds: dict[int | None, None] = {}
        for run in runs:
            by_column = {_column_key(s): s for s in run.data.samples if s.prompt_index == index}
            for s in by_column.values():
                seeds.setdefault(s.seed, None)
            rows.append((run, tuple(by_column.get(c) for c in columns)))
        notes = []
        if len(texts) > 1:
            notes.append("the runs' prompt texts differ here: compare with care")
        if None in seeds and columns:
            notes.append(
                "no fixed seed (add --d 42 to the prompt): each image starts from other noise, "
                "which changes it as much as the settings do"
            )
        elif len(seeds) > 1:
            notes.append(f"the runs used different seeds here ({', '.join(map(str, seeds))})")
        grids.append(
            PromptGrid(
                index=index,
                text=sorted(texts)[0] if texts else None,
                seeds=tuple(seeds),
                columns=tuple(_column_title(c) for c in columns),
                rows=tuple(rows),
                notes=tuple(notes),
            )
        )
    return [g for g in grids if g.columns or g.text is not None]


def _xy_grids(runs: Sequence[CompareRun], keys: Sequence[str]) -> list[XYGrid]:
    """With exactly two differing settings: each prompt's last epoch as the X/Y grid (T30)."""
    if len(keys) != 2:
        return []
    x_key, y_key = keys
    xs = list(dict.fromkeys(r.settings[x_key] for r in runs))
    ys = list(dict.fromkeys(r.settings[y_key] for r in runs))
    grids = []
    prompts = {s.prompt_index for r in runs for s in r.data.samples if s.epoch is not None}
    for prompt in sorted(prompts):
        epochs = [
            max((s.epoch or 0 for s in r.data.samples if s.prompt_index == prompt), default=0)
            for r in runs
        ]
        epoch = max(epochs, default=0)
        if epoch == 0:
            continue
        cells = []
        for y in ys:
            row: list[SampleImage | None] = []
            for x in xs:
                match = next(
                    (r for r in runs if r.settings[x_key] == x and r.settings[y_key] == y),
                    None,
                )
                image = None
                if match is not None:
                    image = next(
                        (
                            s
                            for s in match.data.samples
                            if s.prompt_index == prompt and s.epoch == epoch
                        ),
                        None,
                    )
                row.append(image)
            cells.append(tuple(row))
        grids.append(XYGrid(prompt, x_key, y_key, tuple(xs), tuple(ys), tuple(cells), epoch))
    return grids


# --- rendering -------------------------------------------------------------------------------


def loss_chart(data: CompareData) -> Chart | None:
    """Every run's loss per epoch in one chart (TensorBoard's epoch average, else the log's)."""
    from kohya_plan.report.charts import PALETTE, Series, line_chart
    from kohya_plan.report.html import epoch_losses

    series = []
    for run in data.runs:
        points = sorted(epoch_losses(run.data).items())
        if points:
            color = PALETTE[run.index % len(PALETTE)]
            dash = None if run.index < len(PALETTE) else (6.0, 4.0)
            series.append(Series(run.label, points, color, 2.2, dash=dash, markers=True))
    return line_chart(
        "chart-compare-loss",
        "Loss per epoch",
        series,
        x_label="epoch",
        y_label="loss",
        integer_x=True,
        height=340,
    )


@dataclass(frozen=True)
class _Img:
    src: str
    tip: str
    name: str


def _img(run: CompareRun | None, item: SampleImage | None, where: str) -> _Img | None:
    if item is None:
        return None
    from kohya_plan.report.html import _img_src

    who = f"{run.label}, " if run is not None else ""
    size = f" {item.width}×{item.height}" if item.width else ""
    return _Img(_img_src(item), f"{who}{where}:{size} {item.name}", item.name)


def render_compare(data: CompareData) -> str:
    """compare.html (pure): one self-contained page, as report.html is."""
    from kohya_plan.report.html import CSP, environment

    grids = []
    for grid in data.prompts:
        rows = [
            (
                run,
                [
                    _img(run, s, f"prompt {grid.index + 1}, {c}")
                    for s, c in zip(cells, grid.columns, strict=True)
                ],
            )
            for run, cells in grid.rows
        ]
        grids.append((grid, rows))
    xy = []
    for g in data.xy:
        cells = [
            [
                _img(None, s, f"{g.x_key} {x}, {g.y_key} {y}, epoch {g.epoch}")
                for s, x in zip(row, g.x_values, strict=True)
            ]
            for row, y in zip(g.cells, g.y_values, strict=True)
        ]
        xy.append((g, cells))
    template = environment().get_template(TEMPLATE)
    return template.render(
        data=data,
        csp=CSP,
        grids=grids,
        xy=xy,
        chart=loss_chart(data),
        files=[(run, run.data.files) for run in data.runs],
    )


def output_path(targets: Sequence[Path], output: Path | None) -> Path:
    """Where compare.html goes: --output, else the sweep folder, else the runs' common folder."""
    if output is not None:
        return output.expanduser().absolute()
    run_dirs, sweep = runs_of(targets)
    if sweep is not None:
        return sweep / rundir.COMPARE
    parents = {p.parent for p in run_dirs}
    base = parents.pop() if len(parents) == 1 else Path.cwd()
    return base / rundir.COMPARE


def _preload() -> threading.Thread:
    """Import matplotlib and jinja2 while the runs are read (about half a second, which the
    reading of ten runs covers: the comparison's target is 3 s)."""

    def load() -> None:
        try:
            import jinja2  # noqa: F401
            import matplotlib.backends.backend_svg
            import matplotlib.figure  # noqa: F401
        except ImportError:  # reported where they are used
            return

    thread = threading.Thread(target=load, name="kohya-plan-preload", daemon=True)
    thread.start()
    return thread


def write_compare(
    targets: Iterable[Path], *, output: Path | None = None, embed_limit: int | None = None
) -> Path:
    """Gather, render and write compare.html (a temporary sibling renamed over it); its path."""
    targets = list(targets)
    path = output_path(targets, output)
    loading = _preload()
    data = gather_compare(targets, embed_limit=embed_limit)
    loading.join()
    text = render_compare(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    # as report.html: no fsync (a page that can be written again), so 100 MB cost no wait
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        tmp.replace(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path
