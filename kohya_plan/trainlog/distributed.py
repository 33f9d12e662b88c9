"""What torchrun and the processes of a multi-process run print when one of them fails.

Measured with torch 2.14.1 and accelerate 1.6.0 (scale-lab §1-2): an uncaught exception in a
worker is printed with a ``[rankN]: `` prefix on every line; when a worker dies, torchrun's agent
stops the others and ends with a ``ChildFailedError`` whose message is a table, and its
``Root Cause (first observed failure):`` entry names the rank, its host and how it ended::

    Root Cause (first observed failure):
    [0]:
      time      : 2026-12-01_10:35:16
      host      : localhost
      rank      : 1 (local_rank: 1)
      exitcode  : -9 (pid: 6216)  (SIGKILL)
      error_file: <N/A>
      traceback : Signal 9 (SIGKILL) received by PID 6216
    ======================================================

Pure: lines in, events out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kohya_plan.trainlog.events import Failure

if TYPE_CHECKING:
    from collections import deque

RANK_PREFIX = re.compile(r"^\[rank(\d+)\]: ?")
ROOT_CAUSE = "Root Cause (first observed failure):"
CHILD_FAILED = "torch.distributed.elastic.multiprocessing.errors.ChildFailedError"
_FIELD = re.compile(r"^\s*(\w+)\s*: ?(.*)$")
_RANK = re.compile(r"^(\d+) \(local_rank: (\d+)\)")
_EXITCODE = re.compile(r"^(-?\d+)(?: \(pid: \d+\))?(?:\s+\((\w+)\))?")
# kept per rank, for "its last lines"
RANK_TAIL = 12


def split_rank(line: str) -> tuple[int | None, str]:
    """(rank, the rest) of a ``[rankN]: …`` line; (None, line) for any other."""
    m = RANK_PREFIX.match(line)
    if m is None:
        return None, line
    return int(m.group(1)), line[m.end() :]


@dataclass
class RootCauseReader:
    """Collects torchrun's Root Cause entry, line by line, into a `rank_died` failure."""

    active: bool = False
    lines: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def start(self, line: str) -> None:
        self.active = True
        self.lines = [line]
        self.fields = {}

    def feed(self, line: str, tails: dict[int, deque[str]]) -> Failure | None:
        """Take one line of the entry; the failure once the entry ends (None before)."""
        text = line.strip()
        if text.startswith("=") or (text.startswith("-----") and self.fields):
            self.active = False
            return self._failure(tails)
        self.lines.append(text)
        m = _FIELD.match(line)
        if m is not None:
            self.fields.setdefault(m.group(1), m.group(2).strip())
        return None

    def finish(self, tails: dict[int, deque[str]]) -> Failure | None:
        """The stream ended inside the entry: what it said so far."""
        if not self.active:
            return None
        self.active = False
        return self._failure(tails) if self.fields else None

    def _failure(self, tails: dict[int, deque[str]]) -> Failure:
        rank = local = None
        if (m := _RANK.match(self.fields.get("rank", ""))) is not None:
            rank, local = int(m.group(1)), int(m.group(2))
        host = self.fields.get("host", "")
        how = "failed"
        if (m := _EXITCODE.match(self.fields.get("exitcode", ""))) is not None:
            code, signal = int(m.group(1)), m.group(2)
            if code < 0:
                how = f"was killed by {signal or f'signal {-code}'} (exit code {code})"
            else:
                how = f"exited with status {code}"
        who = "a training process" if rank is None else f"rank {rank}"
        where = []
        if local is not None:
            where.append(f"local rank {local}")
        if host:
            where.append(f"on {host}")
        place = f" ({' '.join(where)})" if where else ""
        message = f"{who}{place} {how}"
        detail = list(self.lines)
        if rank is not None and tails.get(rank):
            detail += [f"[rank{rank}] {x}" for x in tails[rank]]
        return Failure("rank_died", message, tuple(detail), rank=rank)
