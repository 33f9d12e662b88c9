"""Incremental parser for kohya-ss/sd-scripts' console output.

`LogParser.feed` takes raw bytes in chunks of any size, as they come from the trainer's merged
stdout+stderr pipe, and returns the events (`kohya_plan.events`) that the new bytes completed.
It handles what the real logs contain: tqdm frames separated by `\\r`, ANSI cursor moves, rich's
log table wrapped at any width (continuation lines joined again, words cut mid-way included),
`--console_log_simple` bare messages, bilingual English/Japanese messages, Python tracebacks
(accelerate's wrapper traceback included), and argparse errors.

Pure: no I/O, stdlib only. Memory stays bounded: only the unfinished line, the open log record
and the traceback being read are kept.
"""

from __future__ import annotations

import codecs
import math
import re
import unicodedata
from typing import TYPE_CHECKING

from kohya_plan.events import (
    BATCH_SIZE,
    BATCHES_PER_EPOCH,
    EPOCHS,
    GRAD_ACCUM_STEPS,
    PHASE_ACCELERATOR,
    PHASE_DATASET,
    PHASE_LATENTS,
    PHASE_MODEL,
    PHASE_NETWORK,
    PHASE_OPTIMIZER,
    PHASE_TEXT_ENCODER,
    PHASE_TRAINING,
    REG_IMAGES,
    TOTAL_STEPS,
    TRAIN_IMAGES,
    VALIDATION_IMAGES,
    CheckpointRemoved,
    CheckpointSaved,
    ChildExit,
    ConfigWritten,
    DatasetLength,
    EpochStart,
    Event,
    Failure,
    ImageFolder,
    LogLine,
    ModelSaved,
    NoDataFound,
    Phase,
    Progress,
    RunState,
    SampleImages,
    StartupInfo,
    StateSaved,
    Warning,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["LogParser", "parse_log", "replay", "replay_events"]

# A piece (text between \r/\n) longer than this is cut, so a stream that never ends a line
# cannot grow the buffer without bound. Real pieces are < 3 kB (accelerate's argv line).
_MAX_PIECE = 1 << 20
# Lines kept of one log record (a pathological multi-line message is cut, not buffered).
_MAX_RECORD_LINES = 2000
# Exceptions kept of one chained traceback.
_MAX_CHAIN = 8

_LEVELS = frozenset(("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
_LEVEL_PREFIXES = ("DEBUG ", "INFO ", "WARNING ", "ERROR ", "CRITICAL ")
# rich's level column is 8 wide plus one separating space.
_LEVEL_COLUMN = 9

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
# A tail that is the start of an escape sequence, to be completed by the next chunk.
_ANSI_PARTIAL = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*)?")
_TIMED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
_STEPS = re.compile(
    r"steps: *\d+%\|[^|]*\| *(\d+)/(\d+) \[([\d:]+)<([\d:]+|\?), *([\d.]+|\?)(it/s|s/it)"
    r"(?:, (.*))?\]"
)
_EPOCH = re.compile(r"epoch (\d+)/(\d+)")
_LAST_INT = re.compile(r"(\d+)\D*$")
_FOUND_DIR = re.compile(r"found directory (.*) contains (\d+) image files", re.DOTALL)
_CAPTIONS = re.compile(r"No caption file found for (\d+) images")
_QUOTED = re.compile(r"'([^']*)'")
_EXIT_STATUS = re.compile(r"returned non-zero exit status (-?\d+)")
_EXIT_SIGNAL = re.compile(r"died with <Signals\.(\w+): (\d+)>")

_CHAIN_MARKERS = (
    "During handling of the above exception",
    "The above exception was the direct cause",
)
_MISSING_MODEL = (
    "is neither a valid local path nor a valid repo id",
    "model is not found as a file or in Hugging Face",
    "is not a local folder and is not a valid model identifier",
    "HFValidationError",
)
_DATASET_ERRORS = (
    "caption file is empty",
    "image too large",
    "file not found / ",
    "Invalid user config",
    "MultipleInvalid",
    "not supported config file format",
    "illegal char in file",
)
# sd-scripts raises `ImportError("No <package> / ...")` when an optimizer's package is missing.
_OPTIMIZER_PACKAGES = frozenset(
    ("bitsandbytes", "dadaptation", "lion_pytorch", "Prodigy", "schedulefree", "prodigyplus")
)

# Start-up phases, by the first word of the message (a cheap dict lookup rejects most lines).
# Short prefixes: a rich record's first line is checked as soon as it arrives, before the rest.
_PHASES: dict[str, tuple[tuple[str, str], ...]] = {
    "prepare": (
        ("prepare images.", PHASE_DATASET),
        ("prepare optimizer", PHASE_OPTIMIZER),
    ),
    "preparing": (("preparing accelerator", PHASE_ACCELERATOR),),
    "loading": (("loading model for process", PHASE_MODEL),),
    "load": (
        ("load StableDiffusion", PHASE_MODEL),
        ("load Diffusers", PHASE_MODEL),
    ),
    "caching": (
        ("caching latents", PHASE_LATENTS),
        ("caching Text Encoder", PHASE_TEXT_ENCODER),
        ("caching text encoder", PHASE_TEXT_ENCODER),
    ),
    "import": (("import network module", PHASE_NETWORK),),
    "create": (("create LoRA network", PHASE_NETWORK),),
    "running": (("running training", PHASE_TRAINING),),
}

# English labels of the `running training` block (stdout), see sd-scripts train_network.py.
_STARTUP_LABELS = {
    "num train images * repeats": TRAIN_IMAGES,
    "num validation images * repeats": VALIDATION_IMAGES,
    "num reg images": REG_IMAGES,
    "num batches per epoch": BATCHES_PER_EPOCH,
    "num epochs": EPOCHS,
    "batch size per device": BATCH_SIZE,
    "gradient accumulation steps": GRAD_ACCUM_STEPS,
    "total optimization steps": TOTAL_STEPS,
}


def _english(msg: str) -> str:
    """The English half of a bilingual `English / 日本語` message."""
    return msg.split(" / ", 1)[0].removesuffix(" /")


def _after_label(msg: str) -> str:
    """The value after `label / ラベル: value` (or `label: value`)."""
    _, sep, japanese = msg.partition(" / ")
    text = japanese if sep else msg
    _, sep, value = text.partition(": ")
    return value.strip() if sep else ""


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


def _exception_kind(line: str) -> str:
    """Failure kind for a traceback's final exception line."""
    if "OutOfMemoryError" in line or "CUDA out of memory" in line:
        return "cuda_oom"
    if any(s in line for s in _MISSING_MODEL):
        return "missing_model"
    if line.startswith("ImportError: No "):
        package = line[len("ImportError: No ") :].partition(" ")[0]
        if package in _OPTIMIZER_PACKAGES:
            return "optimizer_missing"
    if any(s in line for s in _DATASET_ERRORS):
        return "dataset"
    if line.startswith("KeyboardInterrupt"):
        return "interrupted"
    return "traceback"


def _argparse_options(error: str) -> tuple[str, ...]:
    """The options an argparse error names (`unrecognized arguments: --network_dimm 4`)."""
    found: dict[str, None] = {}
    for token in error.replace("/", " ").split():
        token = token.strip(",:'\"")
        if len(token) > 1 and token[0] == "-" and (token[1] == "-" or token[1].isalpha()):
            found[token] = None
    return tuple(found)


class LogParser:
    """Turns sd-scripts' console output, fed as byte chunks, into events.

    Feed it the merged stdout+stderr stream (or one stream alone) with `feed`, in chunks of any
    size; call `finish` at the end of the stream. The events are the same whatever the chunking.
    With `records=True` it also emits a `LogLine` for every log record and plain line.
    """

    def __init__(self, *, records: bool = False) -> None:
        self._records = records
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._out: list[Event] = []
        self._esc = ""  # an escape sequence cut by the chunk boundary
        self._buf = ""  # the unfinished piece (no \r or \n yet)
        self._eager = 0  # end of the tqdm frame already handled at the start of _buf
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
        self._phase = ""
        self._nan = False
        self._failed = False
        self._suppress = 0  # WARNING records still expected to list images without captions

    # -- public ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Parse the next chunk; return the events it completed."""
        out: list[Event] = []
        self._out = out
        self._take(self._decoder.decode(data), final=False)
        return out

    def finish(self) -> list[Event]:
        """End of stream: flush the unfinished line, the open record and traceback."""
        out: list[Event] = []
        self._out = out
        self._take(self._decoder.decode(b"", final=True), final=True)
        if self._buf:
            self._complete(self._buf)
            self._buf = ""
        if self._rec_level is not None:
            self._close()
        if self._tb:
            self._tb_finish()
        return out

    # -- splitting --------------------------------------------------------------------------

    def _take(self, text: str, *, final: bool) -> None:
        if self._esc:
            text = self._esc + text
            self._esc = ""
        if "\x1b" in text:
            k = text.rfind("\x1b")
            if not final and len(text) - k < 64 and _ANSI_PARTIAL.fullmatch(text, k):
                self._esc = text[k:]
                text = text[:k]
            text = _ANSI.sub("", text)
        if not text:
            return
        if "\r" in text:
            # tqdm redraws with \r; "\r\n" just gives an extra empty piece, which is ignored.
            text = text.replace("\r", "\n")
        if "\n" in text:
            parts = (self._buf + text).split("\n")
            self._buf = parts.pop()
            if self._eager:
                self._complete(parts[0])
                del parts[0]
            line = self._line
            for p in parts:
                line(p)
        else:
            self._buf += text
        if len(self._buf) > _MAX_PIECE:
            while len(self._buf) > _MAX_PIECE:
                piece = self._buf[:_MAX_PIECE]
                self._buf = self._buf[_MAX_PIECE:]
                self._complete(piece)
        if self._buf and not self._eager:
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
        p = self._buf
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
        if self._records or word in _HANDLERS or (level != "INFO" and level != "DEBUG"):
            msg = self._join() if self._rec_lines else first.rstrip()
            if self._records:
                self._out.append(LogLine(level, msg))
            self._message(msg.lstrip(" "), level)
        elif level == "INFO":
            self._suppress = 0
            if word in _PHASES and not self._rec_phased and self._rec_lines:
                self._phase_of(self._join().lstrip(" "))  # a very narrow column hid the prefix

    # -- plain lines: stdout prints, simple-mode messages, tracebacks, argparse ---------------

    def _plain(self, p: str) -> None:
        s = p.strip()
        if not s:
            return
        if self._records:
            self._out.append(LogLine(None, s))
        if s.startswith("Traceback (most recent call last):"):
            self._tb = 1
            self._tb_frame = ""
            self._tb_excs = []
            return
        self._phase_of(s)
        if ": error: " in s and self._argparse(s):
            return
        self._message(s, None)

    def _argparse(self, s: str) -> bool:
        prog, _, error = s.partition(": error: ")
        if not (prog.endswith(".py") and " " not in prog) and not prog.startswith("accelerate"):
            return False
        self._fail("argparse", s, (s,), _argparse_options(error))
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
        if not excs:
            return
        last = excs[-1]
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
            k = _exception_kind(exc)
            if k != "traceback":
                kind = k
                break
        detail = (frame, *excs) if frame else tuple(excs)
        self._fail(kind, last, detail)

    # -- messages ---------------------------------------------------------------------------

    def _phase_of(self, s: str) -> bool:
        cands = _PHASES.get(s.partition(" ")[0])
        if cands is None:
            return False
        for prefix, name in cands:
            if s.startswith(prefix):
                if name != self._phase:
                    self._phase = name
                    self._out.append(Phase(name))
                return True
        return False

    def _message(self, msg: str, level: str | None) -> None:
        handler = _HANDLERS.get(msg.partition(" ")[0])
        if handler is not None and handler(self, msg):
            return
        if level is None or level == "DEBUG":
            return
        if level == "INFO":
            self._suppress = 0
        elif level == "WARNING":
            if self._suppress:
                self._suppress -= 1  # one image path of "No caption file found for N images"
                return
            self._out.append(Warning("generic", _english(msg)))
        else:
            self._out.append(Warning("error", _english(msg)))

    def _fail(
        self, kind: str, message: str, detail: tuple[str, ...] = (), options: tuple[str, ...] = ()
    ) -> None:
        self._failed = True
        self._out.append(Failure(kind, message, detail, options))

    def _warn(self, kind: str, msg: str, count: int | None = None, name: str | None = None) -> bool:
        self._out.append(Warning(kind, _english(msg), count, name))
        return True

    # Handlers, looked up by the message's first word; True when the message was theirs.

    def _h_startup(self, msg: str) -> bool:
        label, sep, rest = msg.partition(" / ")
        name = _STARTUP_LABELS.get(label)
        if name is None or not sep:
            return False
        # "... / 勾配を合計するステップ数 = 1" uses "=", the others ":".
        value = rest.rpartition(" = " if "=" in rest else ":")[2].strip()
        first = value.partition(",")[0].strip()
        if not first.isdigit():
            return False
        self._out.append(StartupInfo(name, int(first), value))
        return True

    def _h_epoch(self, msg: str) -> bool:
        m = _EPOCH.fullmatch(msg)
        if m is None:
            return False
        self._out.append(EpochStart(int(m.group(1)), int(m.group(2))))
        return True

    def _h_saving(self, msg: str) -> bool:
        if msg.startswith("saving checkpoint: "):
            self._out.append(CheckpointSaved(msg[len("saving checkpoint: ") :].strip()))
            return True
        return False

    def _h_removing(self, msg: str) -> bool:
        if msg.startswith("removing old checkpoint: "):
            self._out.append(CheckpointRemoved(msg[len("removing old checkpoint: ") :].strip()))
            return True
        return False

    def _h_saving_state(self, msg: str) -> bool:
        if msg.startswith("Saving current state to "):
            self._out.append(StateSaved(msg[len("Saving current state to ") :].strip()))
            return True
        return False

    def _h_model(self, msg: str) -> bool:
        if msg.startswith("model saved."):
            self._out.append(ModelSaved())
            return True
        if msg.startswith("model is not found as a file or in Hugging Face"):
            self._fail("missing_model", _english(msg), (msg,))
            return True
        return False

    def _h_generating(self, msg: str) -> bool:
        if msg.startswith("generating sample images at"):
            m = _LAST_INT.search(msg)
            if m is not None:
                self._out.append(SampleImages(int(m.group(1))))
                return True
        return False

    def _h_found(self, msg: str) -> bool:
        m = _FOUND_DIR.match(msg)
        if m is None:
            return False
        self._out.append(ImageFolder(m.group(1), int(m.group(2))))
        return True

    def _h_total(self, msg: str) -> bool:
        if msg.startswith("Total dataset length (steps)"):
            m = _LAST_INT.search(msg)
            if m is not None:
                self._out.append(DatasetLength(int(m.group(1))))
                return True
        return False

    def _h_saved(self, msg: str) -> bool:
        if msg.startswith("Saved config file"):
            self._out.append(ConfigWritten(_after_label(msg)))
            return True
        return False

    def _h_no_upper(self, msg: str) -> bool:
        if msg.startswith("No caption file found for"):
            m = _CAPTIONS.match(msg)
            count = int(m.group(1)) if m is not None else None
            # sd-scripts then logs up to 5 image paths (and "... and N more") as WARNINGs.
            self._suppress = min(count, 6) if count is not None else 0
            return self._warn("no_captions", msg, count)
        if msg.startswith("No data found."):
            self._out.append(NoDataFound(_english(msg)))
            return True
        if msg.startswith("No prompt file"):
            return self._warn("no_prompt_file", msg, name=_after_label(msg))
        return False

    def _h_no(self, msg: str) -> bool:
        if msg.startswith("no regularization images"):
            return self._warn("no_reg_images", msg)
        return False

    def _h_some(self, msg: str) -> bool:
        if msg.startswith("some of reg images are not used"):
            return self._warn("reg_images_unused", msg)
        return False

    def _h_ignore(self, msg: str) -> bool:
        if msg.startswith("ignore directory without repeats"):
            return self._warn("ignored_folder", msg, name=_after_label(msg))
        if msg.startswith(("ignore subset with", "ignore duplicated subset with")):
            m = _QUOTED.search(msg)
            return self._warn("ignored_folder", msg, name=m.group(1) if m else None)
        return False

    def _h_not(self, msg: str) -> bool:
        if msg.startswith("not directory: "):
            return self._warn("ignored_folder", msg, name=msg[len("not directory: ") :].strip())
        return False

    def _h_ignoring(self, msg: str) -> bool:
        prefix = "ignoring the following options because config file is found: "
        if msg.startswith(prefix):
            options = _english(msg)[len(prefix) :].strip()
            return self._warn("dataset_config_overrides", msg, name=options)
        return False

    def _h_learning(self, msg: str) -> bool:
        if msg.startswith("learning rate is too low"):
            return self._warn("lr_too_low", msg)
        return False

    def _h_nan(self, msg: str) -> bool:
        if msg.startswith("NaN found in latents"):
            return self._warn("nan_latents", msg)
        return False

    def _h_invalid(self, msg: str) -> bool:
        if msg.startswith("Invalid user config"):
            self._fail("dataset", _english(msg), (msg,))
            return True
        return False

    def _h_illegal(self, msg: str) -> bool:
        if msg.startswith("illegal char in file (not UTF-8)"):
            self._fail("dataset", _english(msg), (msg,))
            return True
        return False

    def _h_neither(self, msg: str) -> bool:
        # One per image; the "No caption file found for N images" summary that follows counts them.
        return msg.startswith("neither caption file nor class tokens are found")


_HANDLERS: dict[str, Callable[[LogParser, str], bool]] = {
    "num": LogParser._h_startup,
    "batch": LogParser._h_startup,
    "gradient": LogParser._h_startup,
    "total": LogParser._h_startup,
    "epoch": LogParser._h_epoch,
    "saving": LogParser._h_saving,
    "removing": LogParser._h_removing,
    "Saving": LogParser._h_saving_state,
    "model": LogParser._h_model,
    "generating": LogParser._h_generating,
    "found": LogParser._h_found,
    "Total": LogParser._h_total,
    "Saved": LogParser._h_saved,
    "No": LogParser._h_no_upper,
    "no": LogParser._h_no,
    "some": LogParser._h_some,
    "ignore": LogParser._h_ignore,
    "not": LogParser._h_not,
    "ignoring": LogParser._h_ignoring,
    "learning": LogParser._h_learning,
    "NaN": LogParser._h_nan,
    "Invalid": LogParser._h_invalid,
    "illegal": LogParser._h_illegal,
    "neither": LogParser._h_neither,
}


def parse_log(data: bytes, *, records: bool = False) -> list[Event]:
    """All events of a complete log."""
    parser = LogParser(records=records)
    events = parser.feed(data)
    events.extend(parser.finish())
    return events


def replay_events(events: Iterable[Event]) -> RunState:
    """The run state after these events."""
    state = RunState()
    for event in events:
        state.apply(event)
    return state


def replay(data: bytes) -> RunState:
    """The run state a complete log describes."""
    return replay_events(parse_log(data))
