"""`kohya-plan board`: TensorBoard in-process over run folders, on 127.0.0.1, stopped cleanly."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from kohya_plan.errors import UsageError
from kohya_plan.workflows.board import (
    Board,
    find_runs,
    iter_event_files,
    serve_forever_until_interrupt,
    start_board,
    why_no_logs,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def make_run(
    root: Path,
    name: str,
    *,
    tags: dict[str, list[float]] | None = None,
    tensorboard: bool = True,
    launched: bool = True,
    finished: bool = False,
) -> Path:
    """A run folder as `make` leaves it; with tags, TensorBoard events as sd-scripts writes."""
    run = root / name
    run.mkdir(parents=True)
    (run / "launch.json").write_text(json.dumps({"argv": ["python"], "cwd": "."}), "utf-8")
    (run / "plan.toml").write_text(
        f"[training]\ntensorboard = {'true' if tensorboard else 'false'}\n", "utf-8"
    )
    if launched:
        (run / "train.log").write_text("", "utf-8")
        (run / "exit.json").write_text(json.dumps({"finished": finished}), "utf-8")
    if tags:
        write_events(run / "logs" / "20260216080729" / "network_train", tags)
    return run


def write_events(folder: Path, tags: dict[str, list[float]]) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    folder.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(folder))
    for tag, values in tags.items():
        for step, value in enumerate(values, start=1):
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
            writer.add_event(Event(wall_time=time.time(), step=step, summary=summary))
    writer.close()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # 127.0.0.1 only
        return json.loads(response.read())


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(predicate: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


@pytest.fixture
def boards() -> Iterator[list[Board]]:
    """Boards a test started; stopped even when it fails."""
    started: list[Board] = []
    yield started
    for board in started:
        board.stop()


LOSS = {"loss/average": [0.2, 0.15, 0.12], "lr/unet": [1e-4, 1e-4, 1e-4]}


def test_serves_runs_and_scalars_then_stops_cleanly(tmp_path: Path, boards: list[Board]) -> None:
    before = set(threading.enumerate())
    one = make_run(tmp_path, "mylora-20260216-080700", tags=LOSS)
    two = make_run(tmp_path, "mylora-20260216-090000", tags={"loss/current": [0.3, 0.2]})
    board = start_board([one, two])
    boards.append(board)
    assert board.url == f"http://127.0.0.1:{board.port}/"
    assert board.warnings == ()
    assert [r.name for r in board.runs] == [one.name, two.name]

    runs = get_json(board.url + "data/runs")
    assert sorted(runs) == [
        f"{one.name}/20260216080729/network_train",
        f"{two.name}/20260216080729/network_train",
    ]
    tags = get_json(board.url + "data/plugin/scalars/tags")
    assert set(tags[f"{one.name}/20260216080729/network_train"]) == {"loss/average", "lr/unet"}
    points = get_json(
        board.url + "data/plugin/scalars/scalars?tag=loss/average"
        f"&run={one.name}/20260216080729/network_train"
    )
    assert [(p[1], round(p[2], 4)) for p in points] == [(1, 0.2), (2, 0.15), (3, 0.12)]

    board.stop()
    assert not port_open(board.port)
    assert wait_for(lambda: not any(t.is_alive() for t in board.threads))
    assert wait_for(lambda: set(threading.enumerate()) <= before)
    board.stop()  # idempotent


def test_one_run_uses_logdir_and_picks_up_new_events(tmp_path: Path, boards: list[Board]) -> None:
    run = make_run(tmp_path, "r1", tags={"loss/average": [0.5]})
    board = start_board([run], reload_interval_s=0.1)
    boards.append(board)
    assert get_json(board.url + "data/runs") == ["r1/20260216080729/network_train"]
    env = get_json(board.url + "data/environment")
    assert env["data_location"] == str(run / "logs")
    # A second logging folder appears (a resumed run): the reloader finds it.
    write_events(run / "logs" / "20260216100000" / "network_train", {"loss/average": [0.4]})
    assert wait_for(lambda: len(get_json(board.url + "data/runs")) == 2)


def test_folder_of_runs_and_logs_folder_are_accepted(tmp_path: Path) -> None:
    a = make_run(tmp_path / "runs", "a", tags=LOSS)
    b = make_run(tmp_path / "runs", "b")
    assert find_runs([tmp_path / "runs"]) == [a, b]
    assert find_runs([a / "logs", a, tmp_path / "runs"]) == [a, b]  # no duplicates


def test_runs_without_logs_are_warned_about(tmp_path: Path, boards: list[Board]) -> None:
    good = make_run(tmp_path, "good", tags=LOSS)
    early = make_run(tmp_path, "early")
    off = make_run(tmp_path, "off", tensorboard=False)
    board = start_board([good, early, off])
    boards.append(board)
    assert [r.name for r in board.runs] == ["good", "early"]  # "early" shows once it logs
    assert len(board.warnings) == 2
    assert "run early has not started logging yet" in board.warnings[0]
    assert "training.tensorboard = false" in board.warnings[1]


def test_same_names_are_made_unique(tmp_path: Path, boards: list[Board]) -> None:
    a = make_run(tmp_path / "x", "run", tags=LOSS)
    b = make_run(tmp_path / "y", "run", tags=LOSS)
    board = start_board([a, b])
    boards.append(board)
    assert [r.name for r in board.runs] == ["run", "run-2"]
    assert len(get_json(board.url + "data/runs")) == 2


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "has not started logging yet"),
        ({"launched": False}, "has not been launched yet"),
        ({"finished": True}, "ended before it wrote TensorBoard logs"),
        ({"tensorboard": False}, "logging off (training.tensorboard = false)"),
    ],
)
def test_no_logs_anywhere_is_a_usage_error(
    tmp_path: Path, kwargs: dict[str, bool], expected: str
) -> None:
    run = make_run(tmp_path, "r", **kwargs)
    with pytest.raises(UsageError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        start_board([run])
    assert expected in why_no_logs(run)[0]


def test_launch_board_waits_for_logs(tmp_path: Path, boards: list[Board]) -> None:
    run = make_run(tmp_path, "fresh", launched=False)
    board = start_board([run], require_logs=False, reload_interval_s=0.1)
    boards.append(board)
    assert board.warnings == ()
    assert get_json(board.url + "data/runs") == []
    write_events(run / "logs" / "20260216080729" / "network_train", LOSS)
    assert wait_for(lambda: get_json(board.url + "data/runs") != [])
    assert list(iter_event_files(run))


def test_logging_off_is_an_error_even_for_launch(tmp_path: Path) -> None:
    run = make_run(tmp_path, "off", tensorboard=False, launched=False)
    with pytest.raises(UsageError, match="logging off"):
        start_board([run], require_logs=False)


@pytest.mark.parametrize("make", ["missing", "file", "plain"])
def test_not_a_run_folder(tmp_path: Path, make: str) -> None:
    target = tmp_path / "thing"
    if make == "file":
        target.write_text("x", "utf-8")
    elif make == "plain":
        (target / "sub").mkdir(parents=True)
    with pytest.raises(UsageError, match="run folder") as info:
        start_board([target])
    assert info.value.exit_code == 2


def test_nothing_given() -> None:
    with pytest.raises(UsageError, match="at least one run folder"):
        start_board([])


def test_port_in_use_and_bad_port(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r", tags=LOSS)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        taken = sock.getsockname()[1]
        with pytest.raises(UsageError, match=f"port {taken} is in use"):
            start_board([run], port=taken)
    with pytest.raises(UsageError, match="not a port number"):
        start_board([run], port=70000)


def test_given_port_and_other_host_warning(tmp_path: Path, boards: list[Board]) -> None:
    run = make_run(tmp_path, "r", tags=LOSS)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    board = start_board([run], host="0.0.0.0", port=free)
    boards.append(board)
    assert board.url == f"http://127.0.0.1:{free}/"
    assert any("no password" in w for w in board.warnings)
    assert get_json(board.url + "data/runs")


def test_serve_until_interrupt_stops_the_board(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r", tags=LOSS)
    board = start_board([run])
    stopper = threading.Timer(0.3, board.stop)
    stopper.start()
    started = time.monotonic()
    serve_forever_until_interrupt(board, poll_s=0.05)
    assert time.monotonic() - started < 5
    assert not port_open(board.port)
    stopper.join()


def test_ctrl_c_stops_the_board(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path, "r", tags=LOSS)
    board = start_board([run])

    def interrupt(timeout_s: float | None = None) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(board, "wait", interrupt)
    serve_forever_until_interrupt(board)
    assert not port_open(board.port)
    assert wait_for(lambda: not any(t.is_alive() for t in board.threads))


def test_quiet(tmp_path: Path, capfd: pytest.CaptureFixture[str], boards: list[Board]) -> None:
    run = make_run(tmp_path, "r", tags=LOSS)
    board = start_board([run])
    boards.append(board)
    get_json(board.url + "data/runs")
    board.stop()
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


def test_open_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    import webbrowser

    from kohya_plan.workflows.board import open_browser

    opened: list[str] = []

    def fake_open(url: str, new: int = 0, autoraise: bool = True) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(webbrowser, "open", fake_open)
    assert open_browser("http://127.0.0.1:1/")
    assert opened == ["http://127.0.0.1:1/"]

    def broken(url: str, new: int = 0, autoraise: bool = True) -> bool:
        raise webbrowser.Error("no browser")

    monkeypatch.setattr(webbrowser, "open", broken)
    assert not open_browser("http://127.0.0.1:1/")
