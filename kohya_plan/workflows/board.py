"""`kohya-plan board`: TensorBoard over run folders' logs, in this process, on 127.0.0.1.

TensorBoard is assembled from its own parts (flags, local data ingester, WSGI app, Werkzeug
server) instead of `TensorBoard.launch()`, so that both of its threads — the HTTP server and the
log reloader — belong to the `Board` and stop with it; `launch()` leaves a reloader behind that
never ends.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import webbrowser
from typing import TYPE_CHECKING, Any

from kohya_plan import rundir
from kohya_plan.errors import KohyaPlanError, UsageError
from kohya_plan.loading import is_plan_folder, load_plan, plan_file
from kohya_plan.trainlog.tensorboard import EVENTS_GLOB

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

RELOAD_INTERVAL_S = 5.0
_RUN_MARKERS = (rundir.LAUNCH, rundir.PLAN)
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class BoardRun:
    """One run folder shown on the board, under its (unique) name."""

    __slots__ = ("logs_dir", "name", "run_dir")

    def __init__(self, name: str, run_dir: Path) -> None:
        self.name = name
        self.run_dir = run_dir
        self.logs_dir = run_dir / rundir.LOGS

    def has_events(self) -> bool:
        return self.logs_dir.is_dir() and any(self.logs_dir.rglob(EVENTS_GLOB))

    def __repr__(self) -> str:
        return f"BoardRun({self.name!r}, {self.run_dir!r})"


def is_run_dir(path: Path) -> bool:
    """A folder made by `kohya-plan make` (it holds launch.json and plan.toml)."""
    return all((path / marker).is_file() for marker in _RUN_MARKERS)


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """Run folders from what the user gave: run folders, their logs/ folders, or a folder of
    runs (such as a plan's runs/), in order and without duplicates."""
    if not paths:
        msg = "give at least one run folder (made by `kohya-plan make` or `launch`)"
        raise UsageError(msg)
    found: list[Path] = []
    for given in paths:
        path = given.expanduser().absolute()
        if not path.is_dir():
            what = "does not exist" if not path.exists() else "is not a folder"
            msg = f"{given} {what} — give a run folder (runs/<name>-<date>-<time>)"
            raise UsageError(msg)
        if path.name == rundir.LOGS and is_run_dir(path.parent):
            path = path.parent
        if is_run_dir(path):
            runs = [path]
        else:
            plan_folder = is_plan_folder(path)
            if plan_folder:  # the folder `init` made: its plan's runs/
                path = _plan_runs(path)
            runs = sorted(p for p in path.iterdir() if p.is_dir() and is_run_dir(p))
            if not runs and plan_folder:
                msg = (
                    f"{given} is a plan folder without runs yet — `kohya-plan launch {given}` "
                    "makes and runs one"
                )
                raise UsageError(msg)
            if not runs:
                msg = (
                    f"{given} is not a run folder: it has no launch.json and plan.toml, and "
                    "no run folders inside — give a folder made by `kohya-plan make` or "
                    "`launch` (runs/<name>-<date>-<time>)"
                )
                raise UsageError(msg)
        found += [run for run in runs if run not in found]
    return found


def _plan_runs(folder: Path) -> Path:
    """Where a plan folder's runs are (output.runs_dir, default runs/), an empty path if none."""
    try:
        runs = load_plan(plan_file(folder)).runs_dir(folder)
    except KohyaPlanError:
        runs = folder / "runs"
    return runs if runs.is_dir() else folder


def _tensorboard_enabled(run_dir: Path) -> bool:
    """training.tensorboard from the run's plan copy (true unless it says false)."""
    from kohya_plan.loading import loads_toml

    try:
        plan = loads_toml((run_dir / rundir.PLAN).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return True
    training = plan.get("training")
    return not (isinstance(training, dict) and training.get("tensorboard") is False)


def why_no_logs(run_dir: Path) -> tuple[str, bool]:
    """Why a run folder has no TensorBoard events yet, and whether it may still get some."""
    name = run_dir.name
    if not _tensorboard_enabled(run_dir):
        return (
            f"run {name} has TensorBoard logging off (training.tensorboard = false) — set "
            "training.tensorboard = true in the plan and launch it again",
            False,
        )
    if not (run_dir / rundir.LOG).is_file():
        return (
            f"run {name} has not been launched yet, so it has no TensorBoard logs — "
            f"`kohya-plan launch {run_dir}` (add --board to watch it)",
            True,
        )
    finished = False
    with contextlib.suppress(rundir.RunDirError):
        exit_info = rundir.RunDir(run_dir).read_json(rundir.EXIT, required=False) or {}
        finished = bool(exit_info.get("finished"))
    if finished:
        return (
            f"run {name} ended before it wrote TensorBoard logs (it stopped before training "
            f"began) — see `kohya-plan summary {run_dir}`",
            False,
        )
    return (
        f"run {name} has not started logging yet: sd-scripts writes TensorBoard events once "
        "training begins, after loading the model and caching latents — wait for the first "
        "steps and start the board again (`kohya-plan launch --board` watches from the start)",
        True,
    )


def _unique_names(run_dirs: Sequence[Path]) -> list[str]:
    names: list[str] = []
    for run_dir in run_dirs:
        name, count = run_dir.name, 1
        while name in names:
            count += 1
            name = f"{run_dir.name}-{count}"
        names.append(name)
    return names


def _display_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _quiet_loggers() -> None:
    """TensorBoard and Werkzeug log requests and notes; keep them off the user's terminal
    unless someone configured those loggers on purpose."""
    for name in ("tensorboard", "werkzeug"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)


class Board:
    """A running TensorBoard: `.url`, `.runs`, `.warnings`; `.stop()` ends both threads."""

    def __init__(
        self,
        url: str,
        runs: Sequence[BoardRun],
        warnings: Sequence[str],
        server: Any,
        multiplexer: Any,
        reload_interval_s: float,
    ) -> None:
        self.url = url
        self.runs = tuple(runs)
        self.warnings = tuple(warnings)
        self._server = server
        self._multiplexer = multiplexer
        self._interval = reload_interval_s
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stopped = False
        self._server_thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="kohya-plan board server",
            daemon=True,
        )
        self._reload_thread = threading.Thread(
            target=self._reload_loop, name="kohya-plan board reload", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        return (self._server_thread, self._reload_thread)

    @property
    def running(self) -> bool:
        return self._server_thread.is_alive() and not self._stopping.is_set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until the board is stopped (or timeout_s passes); True once it is."""
        return self._stopping.wait(timeout_s)

    def reload(self) -> None:
        """Pick up new runs and new events (also done every few seconds in the background)."""
        for run in self.runs:
            self._multiplexer.AddRunsFromDirectory(str(run.logs_dir), run.name)
        self._multiplexer.Reload()

    def _reload_loop(self) -> None:
        while not self._stopping.wait(self._interval):
            # A half-written event file is read again next time; never let the thread die.
            with contextlib.suppress(Exception):
                self.reload()

    def _start(self) -> None:
        self._server_thread.start()
        self._reload_thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop serving, close the port and end both threads (idempotent)."""
        with self._lock:  # a second caller waits until the first one is done
            if self._stopped:
                return
            self._stopping.set()
            if self._server_thread.is_alive():
                self._server.shutdown()
            self._server.server_close()
            for thread in self.threads:
                if thread.is_alive():
                    thread.join(timeout_s)
            self._stopped = True

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_board(
    run_dirs: Sequence[Path],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    require_logs: bool = True,
    reload_interval_s: float = RELOAD_INTERVAL_S,
) -> Board:
    """TensorBoard over the runs' logs/ folders, served from background threads.

    A run without events yet is shown once it writes some; with require_logs (the `board`
    command) at least one run must have events already, and the others are named in
    `Board.warnings`. port None asks the OS for a free port.
    """
    folders = find_runs(run_dirs)
    runs = [BoardRun(n, d) for n, d in zip(_unique_names(folders), folders, strict=True)]
    warnings: list[str] = []
    shown: list[BoardRun] = []
    for run in runs:
        if run.has_events():
            shown.append(run)
            continue
        reason, may_come = why_no_logs(run.run_dir)
        if may_come:
            shown.append(run)
        if require_logs:
            warnings.append(reason)
    if require_logs and len(warnings) == len(runs):
        raise UsageError("\n".join(warnings))
    if not shown:
        raise UsageError("\n".join(why_no_logs(run.run_dir)[0] for run in runs))
    if port is not None and not 0 <= port <= 0xFFFF:
        msg = f"--port {port} is not a port number (1 to 65535, or leave it out)"
        raise UsageError(msg)
    host = host or "0.0.0.0"
    if host not in _LOOPBACK_HOSTS:
        warnings.append(
            f"the board listens on {host}: anyone who can reach this machine can see it "
            "(TensorBoard has no password)"
        )
    server, multiplexer = _make_server(shown, host, 0 if port is None else port)
    url = f"http://{_display_host(host)}:{server.server_port}/"
    board = Board(url, shown, warnings, server, multiplexer, reload_interval_s)
    try:
        board.reload()  # the first load before serving: the page shows data at once
    except Exception:
        server.server_close()
        raise
    board._start()
    return board


def _make_server(runs: Sequence[BoardRun], host: str, port: int) -> tuple[Any, Any]:
    import mimetypes

    from tensorboard import program  # heavy: only here
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_ingester

    if len(runs) == 1:
        logdir = ["--logdir", str(runs[0].logs_dir)]
    else:
        logdir = ["--logdir_spec", ",".join(f"{r.name}:{r.logs_dir}" for r in runs)]
    _quiet_loggers()
    tb = program.TensorBoard()
    tb.configure(argv=["", *logdir, "--host", host, "--port", str(port), "--reload_interval", "0"])
    # The runs are added by Board.reload with their exact paths (commas or colons in a path
    # would confuse --logdir_spec, which here only names the data location in the UI).
    ingester = data_ingester.LocalDataIngester(tb.flags)
    multiplexer = ingester.deprecated_multiplexer
    app = application.TensorBoardWSGIApp(
        tb.flags, tb.plugin_loaders, ingester.data_provider, tb.assets_zip_provider, multiplexer
    )
    # What `tensorboard` itself fixes on start: wrong MIME types from the Windows registry.
    mimetypes.add_type("text/javascript", ".js")
    mimetypes.add_type("font/woff2", ".woff2")
    mimetypes.add_type("text/html", ".html")
    try:
        server = program.WerkzeugServer(app, tb.flags)
    except program.TensorBoardPortInUseError as exc:
        msg = f"port {port} is in use — pass another --port, or leave it out for a free one"
        raise UsageError(msg) from exc
    except program.TensorBoardServerException as exc:
        msg = f"TensorBoard cannot listen on {host}:{port}: {exc.msg} — check --host/--port"
        raise UsageError(msg) from exc
    except OSError as exc:
        msg = f"TensorBoard cannot listen on {host}:{port}: {exc} — check --host/--port"
        raise UsageError(msg) from exc
    _quiet_loggers()
    return server, multiplexer


def serve_forever_until_interrupt(board: Board, *, poll_s: float = 0.5) -> None:
    """Block until Ctrl-C (or the server ends), then stop the board cleanly and return."""
    try:
        while board.running:
            board.wait(poll_s)  # a timeout keeps Ctrl-C working on Windows
    except KeyboardInterrupt:
        pass
    finally:
        board.stop()


def open_browser(url: str) -> bool:
    """Open the board in the user's browser; False where none could be started."""
    try:
        return webbrowser.open(url, new=2)
    except webbrowser.Error:
        return False


def iter_event_files(run_dir: Path) -> Iterator[Path]:
    """The TensorBoard event files of a run folder (for messages and tests)."""
    logs = run_dir / rundir.LOGS
    if logs.is_dir():
        yield from sorted(logs.rglob(EVENTS_GLOB))
