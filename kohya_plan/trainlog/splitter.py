"""Bytes from the trainer's pipe → text pieces: decoded, ANSI-free, split at ``\\r`` and ``\\n``.

tqdm redraws its bar with ``\\r`` and may not end a line for minutes, so a piece ends at either
character. Chunk boundaries can fall anywhere, inside a UTF-8 sequence or an escape sequence
included; both are completed by the next chunk. Memory stays bounded: only the unfinished
piece is kept, and a piece that never ends is cut at :data:`MAX_PIECE` characters.
Pure: no I/O, stdlib only.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["ANSI", "MAX_PIECE", "Splitter", "strip_ansi"]

MAX_PIECE = 1 << 20
"""A piece longer than this is cut. Real pieces are < 3 kB (accelerate's argv line)."""

ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
"""CSI and OSC sequences and two-character escapes: what terminals and rich emit."""
# A tail that is the start of an escape sequence, to be completed by the next chunk.
_ANSI_PARTIAL = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*)?")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences."""
    return ANSI.sub("", text)


class Splitter:
    """Incremental splitter: ``feed`` bytes, get the pieces they completed, in order."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._esc = ""  # an escape sequence cut by the chunk boundary
        self._buf = ""  # the unfinished piece (no \r or \n yet)

    @property
    def pending(self) -> str:
        """The piece begun but not yet ended (a tqdm frame waits here until the next one)."""
        return self._buf

    def feed(self, data: bytes) -> list[str]:
        """The pieces that ``data`` completed."""
        return self._take(self._decoder.decode(data), final=False)

    def finish(self) -> list[str]:
        """End of stream: the last pieces, the unfinished one included."""
        pieces = self._take(self._decoder.decode(b"", final=True), final=True)
        if self._buf:
            pieces.append(self._buf)
            self._buf = ""
        return pieces

    def _take(self, text: str, *, final: bool) -> list[str]:
        if self._esc:
            text = self._esc + text
            self._esc = ""
        if "\x1b" in text:
            k = text.rfind("\x1b")
            if not final and len(text) - k < 64 and _ANSI_PARTIAL.fullmatch(text, k):
                self._esc = text[k:]
                text = text[:k]
            text = ANSI.sub("", text)
        if not text:
            return []
        pieces: list[str] = []
        if "\r" in text:
            # tqdm redraws with \r; "\r\n" just gives an extra empty piece, which is ignored.
            text = text.replace("\r", "\n")
        if "\n" in text:
            pieces = (self._buf + text).split("\n")
            self._buf = pieces.pop()
        else:
            self._buf += text
        while len(self._buf) > MAX_PIECE:
            pieces.append(self._buf[:MAX_PIECE])
            self._buf = self._buf[MAX_PIECE:]
        return pieces
