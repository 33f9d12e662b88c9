"""Incremental parser for kohya-ss/sd-scripts' console output: pieces → log records → events.

`LogParser.feed` takes raw bytes in chunks of any size, as they come from the trainer's merged
stdout+stderr pipe, and returns the events (`kohya_plan.trainlog.events`) that the new bytes
completed. :mod:`.splitter` cuts the bytes into pieces; this module assembles what the real logs
contain: tqdm frames, rich's log table wrapped at any width (continuation lines joined again,
words cut mid-way included), `--console_log_simple` bare messages, Python tracebacks
(accelerate's wrapper traceback included) and argparse errors; :mod:`.messages` says what each
finished message means.

Pure: no I/O, stdlib only. Memory stays bounded: only the unfinished piece, the open log record
and the traceback being read are kept.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import deque

from kohya_plan.trainlog.distributed import (
    CHILD_FAILED,
    RANK_TAIL,
    ROOT_CAUSE,
    RootCauseReader,
    split_rank,
)
from kohya_plan.trainlog.events import ChildExit, Event, Failure, LogLine, Progress
from kohya_plan.trainlog.messages import (
    HANDLERS,
    PHASES,
    MessageReader,
    argparse_options,
    exception_kind,
)
from kohya_plan.trainlog.splitter import Splitter

__all__ = ["LogParser"]

# Lines kept of one log record (a pathological multi-line message is cut, not buffered).
_MAX_RECORD_LINES = 2000
# Exceptions kept of one chained traceback.
_MAX_CHAIN = 8

_LEVELS = frozenset(("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
_LEVEL_PREFIXES = ("DEBUG ", "INFO ", "WARNING ", "ERROR ", "CRITICAL ")
# rich's level column is 8 wide plus one separating space.
_LEVEL_COLUMN = 9

_TIMED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
_STEPS = re.compile(
    r"steps: *\d+%\|[^|]*\| *(\d+)/(\d+) \[([\d:]+)<([\d:]+|\?), *([\d.]+|\?)(it/s|s/it)"
    r"(?:, (.*))?\]"
)
# `/venv/bin/python3: Error while finding module specification for 'accelerate.commands.launch'
# (ModuleNotFoundError: No module named 'accelerate')` or `python: No module named accelerate.x`
_PYTHON_M_FAILED = re.compile(
    r"^\S*python[\w.]*(?:\.exe)?: (?:Error while finding|No module named)"
)
_EXIT_STATUS = re.compile(r"returned non-zero exit status (-?\d+)")
_EXIT_SIGNAL = re.compile(r"died with <Signals\.(\w+): (\d+)>")

_CHAIN_MARKERS = (
    "During handling of the above exception",
    "The above exception was the direct cause",
)


def _seconds(text: str) -> float:
    """tqdm's `MM:SS` or `H:MM:SS` as seconds."""
    total = 0
    for part in text.split(":"):
        total = total * 60 + int(part)
    return float(total)


def _bar_end(p: str) -> int:
    """If `p` starts with a tqdm frame, the index just after its closing `]`; else -1."""
    i = p.find("%|")
    # The percentage is right-aligned in 3 columns, after nothing or after `desc: `.
    if i < 3 or not p[i - 1].isdigit():
        return -1
    if i > 3 and p[i - 5 : i - 3] != ": ":
        return -1
    j = p.find("]", i)
    return j + 1 if j > 0 else -1


def _is_wide(char: str) -> bool:
    """Whether a terminal shows `char` two columns wide (CJK)."""
    return unicodedata.east_asian_width(char) in "WF"


def _is_source(token: str) -> bool:
    """Whether `token` is rich's right-hand `file.py:123` column."""
    name, sep, line = token.rpartition(":")
    return bool(sep) and line.isdigit() and "." in name


class LogParser(MessageReader):
    """Turns sd-scripts' console output, fed as byte chunks, into events.

    Feed it the merged stdout+stderr stream (or one stream alone) with `feed`, in chunks of any
    size; call `finish` at the end of the stream. The events are the same whatever the chunking.
    With `records=True` it also emits a `LogLine` for every log record and plain line.
    """

    def __init__(self, *, records: bool = False) -> None:
        super().__init__(records=records)
        self._split = Splitter()
        self._eager = 0  # end of the tqdm frame already handled at the start of the pending piece
        # The open rich log record: it ends at the first line that is not its continuation.
        self._rec_level: str | None = None
        self._rec_first = ""
        self._rec_fold = 0  # 1: the first line ends mid-word; 2: it does if a wide char follows
        self._rec_phased = False  # its first line already gave a Phase
        self._rec_cont = " " * (20 + _LEVEL_COLUMN)
        self._rec_pad = -1
        self._rec_lines: list[str] = []
        self._time_w = 20  # width of rich's time column, "YYYY-MM-DD HH:MM:SS "
        self._blank = " " * 20
        # Traceback being read: 0 none, 1 frames, 2 after the exception line, 3 chained.
        self._tb = 0
        self._tb_frame = ""
        self._tb_excs: list[str] = []
        self._last_frame = ""
        self._nan = False
        # Several processes: whose `[rankN]: ` line this is, whose traceback is being read,
        # each rank's last prefixed lines, torchrun's root-cause entry.
        self._line_rank: int | None = None
        self._tb_rank: int | None = None
        self._tails: dict[int, deque[str]] = {}
        self._root = RootCauseReader()
        self._child_failed = False
        self._rank_died = False

    # -- public ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Parse the next chunk; return the events it completed."""
        out: list[Event] = []
        self._out = out
        self._pieces(self._split.feed(data))
        return out

    def finish(self) -> list[Event]:
        """End of stream: flush the unfinished line, the open record and traceback."""
        out: list[Event] = []
        self._out = out
        for piece in self._split.finish():
            self._complete(piece)
        if self._rec_level is not None:
            self._close()
        if self._tb:
            self._tb_finish()
        if (died := self._root.finish(self._tails)) is not None:
            self._died(died)
        if self._child_failed and not self._rank_died:
            self._fail("child_exit", "a training process failed (torchrun gave no root cause)")
        return out

    # -- pieces -------------------------------------------------------------------------------

    def _pieces(self, pieces: list[str]) -> None:
        for piece in pieces:
            self._complete(piece)
        if self._split.pending and not self._eager:
            self._eager_frame()

    def _complete(self, p: str) -> None:
        """Handle a finished piece whose leading tqdm frame may already have been handled."""
        if self._eager:
            rest = p[self._eager :]
            self._eager = 0
            if rest and not rest.isspace():
                self._after_bar(rest)
        else:
            self._line(p)

    def _eager_frame(self) -> None:
        # tqdm writes "\r" *before* each frame, so a frame only ends when the next one starts:
        # handle a frame that is complete up to its "]" now, not one optimizer step later.
        p = self._split.pending
        if self._rec_level is not None and p.startswith(self._rec_cont):
            return
        end = _bar_end(p)
        if end > 0:
            self._bar(p, end)
            self._eager = end

    # -- one piece ------------------------------------------------------------------------

    def _line(self, p: str) -> None:
        if not p:
            return
        if p[0] == "[" and p.startswith("[rank"):
            rank, rest = split_rank(p)
            if rank is not None:
                self._ranked(rank, rest)
                return
        if self._rec_level is not None and p.startswith(self._rec_cont):
            if len(self._rec_lines) < _MAX_RECORD_LINES:
                self._rec_lines.append(p)
            return
        if "%|" in p:
            end = _bar_end(p)
            if end > 0:
                self._bar(p, end)
                rest = p[end:]
                if rest and not rest.isspace():
                    self._after_bar(rest)
                return
        if self._rec_level is not None:
            self._close()
        c0 = p[0]
        if c0.isdigit():
            m = _TIMED.match(p)
            if m is not None:
                self._header(p, m.start(1), m.group(1))
                return
        if self._tb and self._tb_line(p):
            return
        if c0 == " ":
            tw = self._time_w
            if p.startswith(self._blank) and p[tw : tw + 1] != " ":
                level = p[tw:].partition(" ")[0]
                if level in _LEVELS:
                    self._header(p, tw, level)
                    return
        self._plain(p)

    def _ranked(self, rank: int, rest: str) -> None:
        """A line one process printed with its `[rankN]: ` prefix (its traceback)."""
        tail = self._tails.get(rank)
        if tail is None:
            tail = self._tails[rank] = deque(maxlen=RANK_TAIL)
        if rest.strip():
            tail.append(rest.rstrip())
        if self._tb and self._tb_rank != rank:
            self._tb_finish()  # another process's traceback starts
        self._line_rank = rank
        try:
            self._line(rest)
        finally:
            self._line_rank = None

    def _died(self, failure: Failure) -> None:
        self._rank_died = True
        self._failed = True
        self._out.append(failure)

    def _after_bar(self, rest: str) -> None:
        # A log record (or a simple-mode message) written right after a frame, on its line.
        s = rest.lstrip(" ")
        if s.startswith(_LEVEL_PREFIXES) and len(rest) - len(s) >= self._time_w:
            s = self._blank + s
        self._line(s)

    def _bar(self, p: str, end: int) -> None:
        if self._rec_level is not None:
            self._close()
        if self._tb >= 2:
            self._tb_finish()
        if not p.startswith("steps:"):
            return  # other bars: captions, image sizes, caching, sampling, validation
        frame = p[:end]
        if frame == self._last_frame:
            return  # tqdm repeats the last frame when the bar is closed at exit
        self._last_frame = frame
        m = _STEPS.match(frame)
        if m is None:
            return
        step, total, elapsed, remaining, rate, unit, post = m.groups()
        postfix: dict[str, str] = {}
        loss = None
        if post:
            for item in post.split(", "):
                key, _, value = item.partition("=")
                postfix[key] = value
            text = postfix.get("avr_loss")
            if text is not None:
                try:
                    loss = float(text)
                except ValueError:
                    loss = None
        progress = Progress(
            int(step),
            int(total),
            _seconds(elapsed),
            None if remaining == "?" else _seconds(remaining),
            None if rate == "?" else float(rate),
            unit,
            loss,
            postfix,
        )
        self._out.append(progress)
        if loss is not None and not self._nan and not math.isfinite(loss):
            # sd-scripts never checks the loss: a NaN run trains on and saves a NaN LoRA.
            self._nan = True
            self._fail(
                "nan_loss",
                f"the average loss became {text} at step {step}",
                (frame,),
            )

    # -- rich log records -----------------------------------------------------------------

    def _header(self, p: str, tw: int, level: str) -> None:
        if tw != self._time_w:
            self._time_w = tw
            self._blank = " " * tw
        c = tw + _LEVEL_COLUMN
        body = p.rstrip()
        head, _, tail = body.rpartition(" ")
        if head and _is_source(tail):
            text = head[c:].rstrip()
            # A word cut mid-way fills the message column: one space left before the path
            # (two if the next character is double-width and did not fit).
            gap = len(head) + 1 - c - len(text)
            fold = gap if gap <= 2 and text and " " not in text.lstrip(" ") else 0
            pad = len(tail) + 1
        else:
            text = body[c:]
            fold = 0
            pad = -1
        self._rec_level = level
        self._rec_first = text
        self._rec_fold = fold
        if len(self._rec_cont) != c:
            self._rec_cont = " " * c
        self._rec_pad = pad
        self._rec_lines = []
        # Now, not when the record ends: the next line may come only when the phase is over.
        self._rec_phased = bool(text) and level == "INFO" and self._phase_of(text.lstrip(" "))

    def _join(self) -> str:
        """The record's message, its wrapped lines joined again."""
        c = len(self._rec_cont)
        pad = self._rec_pad
        parts = [self._rec_first]
        # rich pads every line to the full width; a line cut mid-word is exactly as wide as the
        # message column, so its padding is just the path column plus a separator (one more
        # when the next character is double-width and did not fit). Counting padding rather
        # than text also survives paths rewritten in sanitised logs.
        fold = self._rec_fold
        newline = False
        for raw in self._rec_lines:
            seg = raw[c:]
            text = seg.rstrip()
            if not text:
                parts.append("\n")
                newline = True
                fold = 0
                continue
            body = text.lstrip(" ")
            if fold == 1 or (fold == 2 and _is_wide(text[0])):
                parts.append(text)  # the rest of a word cut at the column's edge
            elif newline or len(body) != len(text):
                parts.append("\n" + text)  # a line of a multi-line message
            else:
                parts.append(" " + text)  # wrapped at a space, which rich dropped
            newline = False
            fold = len(seg) - len(text) - pad + 1 if pad > 0 and " " not in body else 0
        return "".join(parts).rstrip()

    def _close(self) -> None:
        level = self._rec_level
        self._rec_level = None
        if level is None:
            return
        first = self._rec_first
        word = first.lstrip(" ").partition(" ")[0]
        if self._records or word in HANDLERS or (level != "INFO" and level != "DEBUG"):
            msg = self._join() if self._rec_lines else first.rstrip()
            if self._records:
                self._out.append(LogLine(level, msg))
            self._message(msg.lstrip(" "), level)
        elif level == "INFO":
            self._suppress = 0
            if word in PHASES and not self._rec_phased and self._rec_lines:
                self._phase_of(self._join().lstrip(" "))  # a very narrow column hid the prefix

    # -- plain lines: stdout prints, simple-mode messages, tracebacks, argparse ---------------

    def _plain(self, p: str) -> None:
        s = p.strip()
        if not s:
            return
        if self._records:
            self._out.append(LogLine(None, s))
        if self._root.active:
            if (died := self._root.feed(p, self._tails)) is not None:
                self._died(died)
            return
        if s == ROOT_CAUSE and self._child_failed:
            self._root.start(s)
            return
        if s.startswith("Traceback (most recent call last):"):
            self._tb_rank = self._line_rank
            self._tb = 1
            self._tb_frame = ""
            self._tb_excs = []
            return
        self._phase_of(s)
        if ": error: " in s and self._argparse(s):
            return
        if "No module named" in s and _PYTHON_M_FAILED.match(s):
            # `python -m accelerate.commands.launch` in an interpreter without accelerate
            self._fail("missing_package", s, (s,))
            return
        self._message(s, None)

    def _argparse(self, s: str) -> bool:
        prog, _, error = s.partition(": error: ")
        if not (prog.endswith(".py") and " " not in prog) and not prog.startswith("accelerate"):
            return False
        self._fail("argparse", s, (s,), argparse_options(error))
        return True

    def _tb_line(self, p: str) -> bool:
        """Feed a line to the traceback being read; False if it is not part of it."""
        if self._tb == 1:
            if p[0] == " ":  # frames, source lines, ^^^^ markers
                if p.startswith('  File "'):
                    self._tb_frame = p.strip()
            elif len(self._tb_excs) < _MAX_CHAIN:
                self._tb_excs.append(p.strip())
                self._tb = 2
            else:
                self._tb = 2
            if self._records:
                self._out.append(LogLine(None, p.strip()))
            return True
        s = p.strip()
        if not s:
            return True
        if s.startswith(_CHAIN_MARKERS):
            self._tb = 3
        elif self._tb == 3 and s.startswith("Traceback (most recent call last):"):
            self._tb = 1
        else:
            self._tb_finish()
            return False
        if self._records:
            self._out.append(LogLine(None, s))
        return True

    def _tb_finish(self) -> None:
        excs = self._tb_excs
        frame = self._tb_frame
        self._tb = 0
        self._tb_excs = []
        self._tb_frame = ""
        rank, self._tb_rank = self._tb_rank, None
        if not excs:
            return
        last = excs[-1]
        if last.startswith(CHILD_FAILED):
            # torchrun's own traceback: the table after it names the process that failed
            self._child_failed = True
            return
        if last.startswith("subprocess.CalledProcessError:"):
            # accelerate's own traceback: it only says how the trainer exited. The cause is
            # the trainer's output before it, so this is a failure only if nothing came first.
            m = _EXIT_STATUS.search(last)
            if m is not None:
                rc = int(m.group(1))
                what = f"the trainer exited with status {rc}"
            else:
                ms = _EXIT_SIGNAL.search(last)
                rc = -int(ms.group(2)) if ms is not None else 1
                what = f"the trainer was killed by {ms.group(1)}" if ms else "the trainer failed"
            self._out.append(ChildExit(rc, last))
            if not self._failed:
                self._fail("child_exit", what, (last,))
            return
        kind = "traceback"
        for exc in reversed(excs):
            k = exception_kind(exc)
            if k != "traceback":
                kind = k
                break
        detail = (frame, *excs) if frame else tuple(excs)
        if rank is not None:
            last = f"rank {rank}: {last}"
        self._fail(kind, last, detail, rank=rank)
