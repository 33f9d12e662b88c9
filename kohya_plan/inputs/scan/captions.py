"""What sd-scripts makes of a caption file (``DreamBoothDataset.read_caption``). Stdlib only."""

from __future__ import annotations

import os
import sys
from enum import Enum

_O_BINARY = getattr(os, "O_BINARY", 0)


class CaptionState(str, Enum):
    """What sd-scripts makes of an image's caption file."""

    OK = "ok"
    """The first line (stripped) is the caption."""
    MISSING = "missing"
    """No caption file: ``class_tokens`` is used (empty caption plus a warning if None)."""
    EMPTY = "empty"
    """Zero-length file: ``AssertionError: caption file is empty``."""
    BLANK = "blank"
    """First line is whitespace only (or a BOM): trained with an empty caption, no class-token
    fallback and no warning."""
    NOT_UTF8 = "not_utf8"
    """``UnicodeDecodeError`` (the whole file is decoded, not only the first line)."""
    UNREADABLE = "unreadable"
    """The file exists but cannot be read (permissions, ...): sd-scripts crashes."""
    UNCHECKED = "unchecked"
    """Captions were not read (``captions=False``)."""


def caption_from_bytes(
    data: bytes, caption_tokens: int, enable_wildcard: bool
) -> tuple[CaptionState, tuple[str, ...], bool]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return CaptionState.NOT_UTF8, (), False
    if not text:
        return CaptionState.EMPTY, (), False
    # readlines() in text mode splits at \n, \r\n and \r; lines[0].strip() is the caption
    cut = len(text)
    i = text.find("\n")
    if i >= 0:
        cut = i
    j = text.find("\r", 0, cut)
    if j >= 0:
        cut = j
    first = text[:cut].strip()
    # U+FEFF is not whitespace: sd-scripts keeps a UTF-8 BOM in the caption (it opens captions
    # as "utf-8", not "utf-8-sig"); the CLIP tokenizer drops it again
    bom = text.startswith("\ufeff")
    if bom:
        first = first.lstrip("\ufeff").strip()
        text = text.lstrip("\ufeff")
    # with wildcards every non-blank line counts; they are all blank iff the text is. A BOM
    # alone is a blank caption too: the tokenizer sees nothing.
    blank = not text.strip() if enable_wildcard else not first
    if blank:
        return CaptionState.BLANK, (), bom
    tokens: tuple[str, ...] = ()
    if caption_tokens > 0:
        tokens = tuple(
            sys.intern(t.strip()) for t in first.split(",", caption_tokens)[:caption_tokens]
        )
    return CaptionState.OK, tokens, bom


def _read_fd(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def read_path(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | _O_BINARY)
    except OSError:
        return None
    return read_and_close(fd)


def read_and_close(fd: int) -> bytes | None:
    """A whole open file's bytes (None when reading fails); closes the file."""
    try:
        return _read_fd(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
