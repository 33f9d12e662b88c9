"""report.html from synthetic run folders: what a user looking at the page would notice.

A run folder is made the way `make` makes it (check_plan + make_run), its train.log is the real
sd-scripts log of tests/fixtures/logs/run1_basic (2 epochs, 16 steps), its TensorBoard events
are real event files holding the scalars that run logged, the sample images are small PNGs
with sd-scripts' names, and summary.json/manifest.json come from launching.finish_summary.
"""

from __future__ import annotations

import base64
import json
import math
import re
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

import pytest
from helpers import TESTS, base_plan, make_images, write_plan, write_png

from kohya_plan.loading import load_plan
from kohya_plan.planning import check_plan, make_run
from kohya_plan.report import ReportData, gather, render_report, write_report
from kohya_plan.report.charts import Series, line_chart, thin, tick_label
from kohya_plan.report.samples import parse_sample_name, read_prompts
from kohya_plan.trainlog.replay import replay_file
from kohya_plan.workflows.results import finish_summary

if TYPE_CHECKING:
    from pathlib import Path

LOGS = TESTS / "fixtures" / "logs"
PROMPTS = [
    "testchar, red hair, smiling --n lowres --w 64 --h 64 --d 7",
    "testchar <b>bold</b> & blue sky --w 64 --h 64 --d 8",
]
STAMP = "20261127000127"


# --- building run folders --------------------------------------------------------------------


def run1_log() -> bytes:
    """run1 as one unbuffered pipe carries it: each print between the progress frames around it."""
    out = (LOGS / "run1_basic.stdout.txt").read_bytes()
    err = (LOGS / "run1_basic.stderr.txt").read_bytes()
    head_end = out.index(b"epoch 1/2\n") + len(b"epoch 1/2\n")
    mid_end = out.index(b"epoch 2/2\n") + len(b"epoch 2/2\n")
    step9 = err.index(b"\rsteps:  56%")
    saved = err.index(b"2026-11-26 23:04:51 INFO     model saved.")
    return (
        out[:head_end]
        + err[:step9]
        + out[head_end:mid_end]
        + err[step9:saved]
        + out[mid_end:]
        + err[saved:]
    )


def run1_scalars() -> dict[str, list[tuple[int, float]]]:
    """The scalars run1 logged to TensorBoard (from the fixture's dump)."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    text = (LOGS / "run1_basic.tb-scalars.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("scalar "):
            tag, values = line[len("scalar ") :].split(": ", 1)
            scalars[tag] = [(int(s), float(v)) for s, v in re.findall(r"(\d+):([-\d.e]+)", values)]
    return scalars


def write_events(folder: Path, scalars: dict[str, list[tuple[int, float]]]) -> None:
    """A real TensorBoard event file, as accelerate's tracker writes it (one event per value)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    folder.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(folder))
    for tag, points in scalars.items():
        for step, value in points:
            summary = summary_pb2.Summary(
                value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]
            )
            writer.add_event(event_pb2.Event(step=step, wall_time=1.8e9 + step, summary=summary))
    writer.close()


def make_run_dir(
    tmp_path: Path,
    *,
    sampling: dict[str, Any] | None = None,
    epochs: int = 2,
) -> Path:
    """A run folder exactly as `make` writes it (plan.toml, command.sh, prompts.txt, ...)."""
    folder = make_images(tmp_path / "data" / "2_testchar", [(64, 64)] * 3, caption="testchar")
    (folder / "img2.txt").unlink()  # one image without a caption
    sampling = (
        {"every_n_epochs": 1, "at_first": True, "prompts": PROMPTS}
        if sampling is None
        else sampling
    )
    plan = write_plan(
        tmp_path,
        base_plan(training={"epochs": epochs}, sampling=sampling),
    )
    return make_run(check_plan(plan)).run_dir


def lora(out: Path, name: str, size: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_bytes(b"\0" * size)
    return path


def sample(
    out: Path,
    epoch: int | None,
    index: int,
    colour: tuple[int, int, int],
    *,
    step: int | None = None,
    stamp: str = STAMP,
    size: int = 32,
) -> Path:
    folder = out / "sample"
    folder.mkdir(parents=True, exist_ok=True)
    num = f"e{epoch:06d}" if epoch is not None else f"{step:06d}"
    path = folder / f"testlora_{num}_{index:02d}_{stamp}_{7 + index}.png"
    write_png(path, size, size, colour)
    return path


def finish(
    run_dir: Path, log: bytes, *, exit_status: int | None = 0, finished: bool = True
) -> None:
    """train.log, exit.json, summary.json and manifest.json as `launch` leaves them."""
    (run_dir / "train.log").write_bytes(log)
    info: dict[str, Any] = {"started_at": None, "argv": [], "finished": finished}
    if finished:
        info.update(exit_status=exit_status, wall_s=61.5, stop_reason=None, escalation=None)
        plan = load_plan(run_dir / "plan.toml")
        finish_summary(
            run_dir,
            plan,
            replay_file(run_dir / "train.log"),
            exit_status=exit_status,
            wall_s=61.5,
            stop_reason=None,
            escalation=None,
            started_at=None,
            link_final=True,
        )
    (run_dir / "exit.json").write_text(json.dumps(info), encoding="utf-8")


@pytest.fixture
def full_run(tmp_path: Path) -> Path:
    """A finished 2-epoch run with logs, TensorBoard, samples (3 rows × 2 prompts) and files."""
    run_dir = make_run_dir(tmp_path)
    out = tmp_path / "out"
    write_events(run_dir / "logs" / "20261126230341" / "network_train", run1_scalars())
    for epoch in (0, 1, 2):
        for index in (0, 1):
            sample(out, epoch, index, (40 * epoch, 100 + 60 * index, 200))
    lora(out, "testlora-000001.safetensors", 12_345)
    lora(out, "testlora.safetensors", 23_456)
    finish(run_dir, run1_log())
    return run_dir


# --- reading the page ------------------------------------------------------------------------


class Page(HTMLParser):
    """What the page shows, collected the way the tests look at it.

    Charts by id: the texts drawn in the SVG (legend, axis labels, ticks), the value labels drawn
    above points, how many points each series' line passes through and how many markers it has
    (in series order), and the chart's table of values (series name -> its cells)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.body: dict[str, str | None] = {}
        self.charts: dict[str, dict[str, Any]] = {}
        self.images: list[dict[str, Any]] = []
        self.prompt_headers: dict[int, str] = {}
        self.resources: list[str] = []
        self._chart: str | None = None
        self._groups: list[str] = []
        self._table: str | None = None
        self._cells: list[str] | None = None
        self._row: dict[str, str | None] = {}
        self._th_prompt: int | None = None
        self.text_parts: list[str] = []
        self.feed(text)
        self.text = " ".join(" ".join(self.text_parts).split())

    def _chart_of(self, chart_id: str) -> dict[str, Any]:
        return self.charts.setdefault(
            chart_id, {"texts": [], "values": [], "lines": [], "markers": [], "series": {}}
        )

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key):
                self.resources.append(str(a[key]))
        if tag == "body":
            self.body = a
        elif tag == "svg" and "chart" in (a.get("class") or ""):
            self._chart = str(a["id"])
            self._chart_of(self._chart)
        elif tag == "g" and self._chart:
            self._groups.append(a.get("id") or "")
        elif tag == "path" and self._chart and self._in_series():
            chart = self.charts[self._chart]
            if len(chart["lines"]) < self._series_index() + 1:  # the line, not a marker shape
                chart["lines"].append(len(re.findall(r"[ML] ", a.get("d") or "")))
                chart["markers"].append(0)
        elif tag == "use" and self._chart and self._in_series():
            self.charts[self._chart]["markers"][self._series_index()] += 1
        elif tag == "table" and a.get("data-chart"):
            self._table = str(a["data-chart"])
            self._chart_of(self._table)
        elif tag == "tr" and self._table and a.get("data-series") is not None:
            self._cells = []
            self.charts[self._table]["series"][str(a["data-series"])] = self._cells
        elif tag == "td" and self._cells is not None:
            self._cells.append("")
        elif tag == "tr":
            self._row = a
        elif tag == "th" and a.get("data-prompt") is not None:
            self._th_prompt = int(str(a["data-prompt"]))
            self.prompt_headers[self._th_prompt] = ""
        elif tag == "img":
            self.images.append({**a, "row": dict(self._row)})

    def _in_series(self) -> bool:
        return any("-series-" in g for g in self._groups)

    def _series_index(self) -> int:
        group = next(g for g in reversed(self._groups) if "-series-" in g)
        return int(group.rsplit("-", 1)[1])

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None
        elif tag == "g" and self._chart and self._groups:
            self._groups.pop()
        elif tag == "th":
            self._th_prompt = None
        elif tag == "tr":
            self._cells = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)
        if self._chart and data.strip():
            chart = self.charts[self._chart]
            chart["texts"].append(data.strip())
            if any("-value-" in g for g in self._groups):
                chart["values"].append(data.strip())
        if self._cells is not None and self._cells:
            self._cells[-1] += data
        if self._th_prompt is not None:
            self.prompt_headers[self._th_prompt] += data


def table_of(chart: dict[str, Any]) -> dict[str, dict[str, str]]:
    """A chart's table of values: series name -> points, first, last, lowest, highest."""
    keys = ("name", "points", "first", "last", "lowest", "highest")
    return {
        name: dict(zip(keys, (" ".join(c.split()) for c in cells), strict=True))
        for name, cells in chart["series"].items()
    }


def page_of(run_dir: Path) -> tuple[str, Page]:
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# --- a finished run --------------------------------------------------------------------------


def test_loss_charts_show_every_step_and_epoch(full_run: Path) -> None:
    _, page = page_of(full_run)
    step = page.charts["chart-loss-step"]
    values = table_of(step)
    assert {name: row["points"] for name, row in values.items()} == {
        "loss/current (TensorBoard)": "16",
        "loss/average (TensorBoard)": "16",
        "avr_loss (train.log)": "16",
    }
    # Each series is a line through all its points, named in the chart's legend.
    assert step["lines"] == [16, 16, 16]
    assert set(values) <= set(step["texts"])
    # The log's values are the bar's (3 significant digits).
    log = values["avr_loss (train.log)"]
    assert (log["first"], log["last"]) == ("1.06 at step 1", "1.05 at step 16")
    epoch = page.charts["chart-loss-epoch"]
    values = table_of(epoch)
    # (TensorBoard stores float32: 1.0956 and 1.0524, shown with 4 digits)
    tb = values["loss/epoch_average (TensorBoard)"]
    assert (tb["points"], tb["first"], tb["last"]) == ("2", "1.096 at epoch 1", "1.052 at epoch 2")
    log = values["avr_loss at epoch end (train.log)"]
    assert (log["points"], log["first"], log["last"]) == ("2", "1.1 at epoch 1", "1.05 at epoch 2")
    assert epoch["lines"] == [2, 2]
    assert epoch["markers"] == [2, 2]  # few points: each is marked
    assert epoch["values"] == ["1.096", "1.052"]  # and labelled with its value
    # Axes are labelled.
    assert {"step", "loss"} <= set(step["texts"])
    assert {"epoch", "loss"} <= set(epoch["texts"])


def test_learning_rate_chart_has_the_named_groups(full_run: Path) -> None:
    _, page = page_of(full_run)
    lr = page.charts["chart-lr"]
    values = table_of(lr)
    assert set(values) == {"lr/unet", "lr/textencoder"}  # lr/group1 duplicates lr/unet
    assert all(row["points"] == "16" for row in values.values())
    assert lr["lines"] == [16, 16]
    assert {"lr/unet", "lr/textencoder", "step", "learning rate"} <= set(lr["texts"])
    assert "chart-dlr" not in page.charts


def test_every_sample_is_embedded_in_its_epoch_row_and_prompt_column(full_run: Path) -> None:
    _, page = page_of(full_run)
    out = full_run.parent.parent / "out" / "sample"
    files = sorted(out.glob("*.png"))
    assert len(files) == 6
    placed = {
        (int(str(img["row"]["data-epoch"])), int(str(img["data-prompt"]))): img["src"]
        for img in page.images
    }
    assert len(page.images) == 6
    for path in files:
        found = parse_sample_name(path.name, "testlora")
        assert found is not None
        assert placed[(found.epoch, found.prompt_index)] == data_uri(path)
    # Column headers are the prompt texts (escaped), rows say which epoch.
    assert "testchar, red hair, smiling" in page.prompt_headers[0]
    assert "--n lowres" in page.prompt_headers[0]
    assert "testchar <b>bold</b> & blue sky" in page.prompt_headers[1]
    assert "before training" in page.text
    assert "epoch 1" in page.text
    assert "epoch 2" in page.text


def test_rows_show_the_epoch_loss_and_file(full_run: Path) -> None:
    text, _ = page_of(full_run)
    row = re.search(r'<tr data-epoch="1"><th class="row".*?</th>', text)
    assert row is not None
    assert "loss 1.096" in row.group(0)
    assert "testlora-000001.safetensors" in row.group(0)


def test_lora_files_with_sizes_and_epochs(full_run: Path) -> None:
    _, page = page_of(full_run)
    assert "testlora-000001.safetensors" in page.text
    assert "12,345 bytes" in page.text
    assert "12.1 KiB" in page.text
    assert "23,456 bytes" in page.text
    assert "22.9 KiB" in page.text
    # The final file is epoch 2's, also saved under that epoch's name (T29).
    assert "final (epoch 2)" in page.text
    assert "testlora-000002.safetensors" in page.text


def test_plan_command_dataset_and_summary(full_run: Path) -> None:
    text, page = page_of(full_run)
    command = (full_run / "command.sh").read_text(encoding="utf-8")
    exec_line = next(x for x in command.splitlines() if x.startswith("exec "))[5:]
    assert exec_line in page.text
    assert 'name = "testlora"' in page.text  # plan.toml
    # dataset: folder, repeats, images, captions (one image has none)
    row = re.search(r"<tr><td class=\"path\">[^<]*2_testchar</td>.*?</tr>", text)
    assert row is not None
    cells = re.findall(r'<td class="num">(\d+|\?)</td>', row.group(0))
    assert cells[:3] == ["2", "3", "2"]
    assert page.body["data-outcome"] == "succeeded"
    assert "16 / 16" in page.text  # steps
    assert "2 / 2" in page.text  # epochs
    assert "01:01" in page.text  # wall time
    assert "falling" in page.text


def test_page_is_self_contained(full_run: Path) -> None:
    text, page = page_of(full_run)
    assert all(r.startswith(("data:", "#")) for r in page.resources), page.resources
    # url() only names an element of the page (the charts' clip paths), never a file or a site
    assert all(ref.startswith("#") for ref in re.findall(r"url\(([^)]*)\)", text))
    assert re.findall(r'xlink:href="([^#][^"]*)"', text) == []
    assert "@import" not in text
    without_ns = text.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', ""
    )
    assert "http://" not in without_ns
    assert "https://" not in without_ns
    assert "<script>" in text
    assert "data-images-loaded" in text


def test_hostile_text_is_escaped_everywhere(tmp_path: Path) -> None:
    """Prompts, tags and names are shown as text, never run as markup (autoescape)."""
    run_dir = make_run_dir(tmp_path)
    hostile = "lr/<b>x</b> & \"q\" 'a' $y$"
    write_events(run_dir / "logs" / "x" / "network_train", {hostile: [(1, 1.0), (2, 0.5)]})
    sample(tmp_path / "out", 1, 1, (9, 9, 9))
    finish(run_dir, run1_log())
    text, page = page_of(run_dir)
    assert "<b>bold</b>" not in text
    assert "<b>x</b>" not in text
    assert "testchar &lt;b&gt;bold&lt;/b&gt; &amp; blue sky" in text
    assert "testchar <b>bold</b> & blue sky" in page.prompt_headers[1]
    # The tag is the series' name in the chart's legend and in its table, as written.
    lr = page.charts["chart-lr"]
    assert set(table_of(lr)) == {hostile}
    assert hostile in lr["texts"]
    assert re.search(r"<b\b", text.replace("<b>What to do:</b>", "")) is None


def test_write_is_atomic_and_repeatable(full_run: Path) -> None:
    first = write_report(full_run)
    second = write_report(full_run)
    assert first == second
    assert sorted(p.name for p in full_run.iterdir() if "report" in p.name) == ["report.html"]


def test_prodigy_runs_get_an_effective_learning_rate_chart(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path)
    dlr = [(1, 1e-06), (2, 1e-06), (3, 1.52912e-06), (4, 3.87437e-06), (5, 7.54007e-06)]
    write_events(
        run_dir / "logs" / "x" / "network_train",
        {
            "lr/unet": [(s, 1.0) for s, _ in dlr],
            "lr/d*lr/unet": dlr,
            "lr/group0": [(s, 1.0) for s, _ in dlr],
            "lr/d*lr/group0": dlr,
        },
    )
    finish(run_dir, run1_log())
    _, page = page_of(run_dir)
    assert set(table_of(page.charts["chart-lr"])) == {"lr/unet"}
    dlr = table_of(page.charts["chart-dlr"])
    assert set(dlr) == {"lr/d*lr/unet"}
    row = dlr["lr/d*lr/unet"]
    assert (row["points"], row["first"], row["last"]) == (
        "5",
        "1e-06 at step 1",
        "7.54e-06 at step 5",
    )
    assert row["highest"] == "7.54e-06 at step 5"
    assert page.charts["chart-dlr"]["lines"] == [5]
    assert "Effective learning rate (d·lr)" in page.text


# --- partial and failed runs -----------------------------------------------------------------


def test_failed_run_shows_its_cause(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, sampling={})
    log = (LOGS / "run7_fail_model.stdout.txt").read_bytes() + (
        LOGS / "run7_fail_model.stderr.txt"
    ).read_bytes()
    finish(run_dir, log, exit_status=1)
    _, page = page_of(run_dir)
    assert page.body["data-outcome"] == "failed"
    assert "Cause: missing_model" in page.text
    assert "is neither a valid local path nor a valid repo id" in page.text
    assert "check model.base" in page.text  # the advice
    assert "no TensorBoard logs" in page.text
    assert "Learning rate: not available" in page.text
    assert "sampling was off" in page.text
    assert "No LoRA file was saved." in page.text
    assert page.images == []


def test_run_never_launched(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path)
    _, page = page_of(run_dir)
    assert page.body["data-outcome"] == "not launched"
    assert "never launched" in page.text
    assert "Loss per step: not available" in page.text
    assert "no sample images" in page.text
    assert page.charts == {}
    assert 'name = "testlora"' in page.text  # the plan is still shown


def test_unfinished_run_shows_what_is_there(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path)
    log = run1_log()
    half = log[: log.index(b"epoch 2/2\n")]
    finish(run_dir, half, finished=False)
    sample(tmp_path / "out", 0, 0, (10, 20, 30))
    _, page = page_of(run_dir)
    assert page.body["data-outcome"] == "incomplete"
    assert "has not finished" in page.text
    points = table_of(page.charts["chart-loss-step"])["avr_loss (train.log)"]["points"]
    assert 0 < int(points) < 16
    assert len(page.images) == 1
    # prompt 2 has no image yet: an empty cell, not a broken image
    assert "—" in page.text


def test_run_folder_with_only_a_plan(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "odd"
    run_dir.mkdir(parents=True)
    (run_dir / "plan.toml").write_text("not = [valid", encoding="utf-8")
    _, page = page_of(run_dir)
    assert "plan.toml could not be loaded" in page.text
    assert "Command: not available" in page.text


# --- sample images ---------------------------------------------------------------------------


def test_step_samples_are_rows_by_step(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, sampling={"every_n_steps": 4, "prompts": PROMPTS})
    out = tmp_path / "out"
    for step in (4, 8, 12):
        for index in (0, 1):
            sample(out, None, index, (step * 10, 50, 50), step=step)
    finish(run_dir, run1_log())
    _, page = page_of(run_dir)
    rows = sorted({int(str(i["row"]["data-step"])) for i in page.images})
    assert rows == [4, 8, 12]
    assert "step 12" in page.text


def test_newest_sample_wins_and_older_ones_are_mentioned(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path)
    out = tmp_path / "out"
    old = sample(out, 1, 0, (1, 2, 3), stamp="20250101000000")
    new = sample(out, 1, 0, (4, 5, 6), stamp="20261127000127", size=48)
    finish(run_dir, run1_log())
    _, page = page_of(run_dir)
    srcs = [i["src"] for i in page.images]
    assert data_uri(new) in srcs
    assert data_uri(old) not in srcs
    assert "1 older sample image(s)" in page.text


def test_large_sample_sets_are_linked_beside_the_report(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path)
    path = sample(tmp_path / "out", 1, 0, (9, 9, 9))
    finish(run_dir, run1_log())
    data = gather(run_dir, embed_limit=0)
    (only,) = data.samples
    assert only.data is None
    assert only.href is not None
    assert (run_dir / only.href).resolve() == path.resolve()
    assert 'src="../../out/sample/' in render_report(data)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("testlora_e000001_00_20260216081502_42.png", (1, None, 0, 42)),
        ("testlora_e000000_03_20260216081502.png", (0, None, 3, None)),
        ("testlora_000500_01_20260216082233.png", (None, 500, 1, None)),
        ("testlora_1000000_12_20260216082233_5.png", (None, 1000000, 12, 5)),
    ],
)
def test_sample_names(name: str, expected: tuple[int | None, ...]) -> None:
    item = parse_sample_name(name, "testlora")
    assert item is not None
    assert (item.epoch, item.step, item.prompt_index, item.seed) == expected


@pytest.mark.parametrize(
    "name",
    [
        "other_e000001_00_20260216081502.png",
        "testlora_bar_e000001_00_20260216081502.png",  # another output name with our prefix
        "testlora_e000001_00_2026021608.png",
        "testlora-000001.safetensors",
        "testlora_e000001_00_20260216081502.jpg",
    ],
)
def test_not_sample_names(name: str) -> None:
    assert parse_sample_name(name, "testlora") is None


def test_prompts_file_numbering() -> None:
    text = "# header\n\nfirst --w 64\n#skipped\n  second\n"
    assert read_prompts(text) == ("first --w 64", "second")


# --- charts ----------------------------------------------------------------------------------


def test_tick_labels_have_the_digits_their_spacing_needs() -> None:
    ticks = [1.00, 1.05, 1.10, 1.15, 1.20]
    assert [tick_label(t, 0.05) for t in ticks] == ["1.00", "1.05", "1.10", "1.15", "1.20"]
    ticks = [0, 2e-5, 4e-5, 6e-5, 8e-5, 1e-4]
    assert [tick_label(t, 2e-5) for t in ticks] == ["0", "2e-5", "4e-5", "6e-5", "8e-5", "1e-4"]
    assert tick_label(9.9999999999e-5, 2e-5) == "1e-4"


def test_learning_rates_are_labelled_in_full_on_the_axis(tmp_path: Path) -> None:
    """Tiny learning rates read '4e-5' at each tick (no ×10ⁿ note to miss)."""
    steps = [(s, 1e-4 * (1 - s / 20)) for s in range(1, 17)]
    chart = line_chart(
        "c", "t", [Series("lr/unet", steps, "#000")], x_label="step", y_label="lr", y_from_zero=True
    )
    assert chart is not None
    texts = Page(chart.svg).charts["c"]["texts"]
    assert {"0", "2e-5", "4e-5", "6e-5", "8e-5"} <= set(texts)
    assert not any("×" in t or "10^" in t for t in texts)


def test_long_series_are_thinned_but_keep_their_extremes() -> None:
    points = [(float(i), 1.0 + (0.5 if i == 7777 else 0.0) - i * 1e-5) for i in range(10_000)]
    shown = thin(points)
    assert len(shown) <= 1600
    assert (7777.0, points[7777][1]) in shown
    assert shown[0] == points[0]
    assert shown[-1] == points[-1]
    chart = line_chart("c", "t", [Series("s", points, "#000")], x_label="step", y_label="loss")
    assert chart is not None
    (facts,) = chart.series
    assert (facts.points, facts.drawn) == (10_000, len(shown))
    assert facts.highest == (7777.0, points[7777][1])  # the spike is in the table
    page = Page(f"<figure>{chart.svg}</figure>")
    assert page.charts["c"]["lines"] == [len(shown)]
    assert page.charts["c"]["markers"] == [0]  # no markers on long series


def test_chart_of_a_10000_step_run_in_the_page(tmp_path: Path) -> None:
    """The step chart of a long run: every step counted in its table, a thinned line drawn."""
    data = ReportData(
        run_dir="x",
        output_name="x",
        outcome="succeeded",
        generated_at="now",
        log_present=True,
        loss_points=tuple((s, 0.1 + 0.01 * math.sin(s)) for s in range(1, 10_001)),
    )
    page = Page(render_report(data))
    row = table_of(page.charts["chart-loss-step"])["avr_loss (train.log)"]
    assert row["points"].startswith("10000 (")
    assert 400 < page.charts["chart-loss-step"]["lines"][0] <= 1600


def test_non_finite_values_are_left_out() -> None:
    chart = line_chart(
        "c",
        "t",
        [Series("s", [(1, 1.0), (2, float("nan")), (3, float("inf")), (4, 0.5)], "#000")],
        x_label="step",
        y_label="loss",
    )
    assert chart is not None
    assert chart.series[0].points == 2
    assert (chart.series[0].first, chart.series[0].last) == ((1.0, 1.0), (4.0, 0.5))
    assert "nan" not in chart.svg.lower()
    assert "inf" not in chart.svg.lower()
    assert (
        line_chart("c", "t", [Series("s", [(1, math.nan)], "#000")], x_label="", y_label="") is None
    )


def test_render_without_anything() -> None:
    text = render_report(
        ReportData(run_dir="x", output_name="x", outcome="not launched", generated_at="now")
    )
    page = Page(text)
    assert page.charts == {}
    assert "not available" in page.text
