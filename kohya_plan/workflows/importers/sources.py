"""What an importer may read besides its source text, injected so that importers stay pure.

A source names other files (a dataset TOML, a prompt file, image folders) by paths relative to
wherever its tool ran. They are taken relative to the source's own folder, else to the nearest
parent folder where they exist (the kohya_ss GUI resolves against its install folder, where
its configs usually live), with Windows separators understood.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

_WINDOWS_ABSOLUTE = re.compile(r"^([A-Za-z]:[\\/]|\\\\)")


@dataclass(frozen=True)
class Sources:
    """Read-only access to the files a source refers to."""

    base_dir: PurePath
    read_text: Callable[[PurePath], str]
    """Text of a file; raises OSError (or UnicodeDecodeError) when it cannot be read."""
    exists: Callable[[PurePath], bool]
    list_dir: Callable[[PurePath], list[tuple[str, bool]] | None]
    """(name, is_folder) of a folder's entries, or None when it is not a folder."""


def memory_sources(files: Mapping[str, str], base_dir: str = "/src") -> Sources:
    """Sources backed by a dict of POSIX paths → text (tests, and sources without files)."""
    texts = {str(PurePosixPath(k)): v for k, v in files.items()}

    def read_text(path: PurePath) -> str:
        key = str(PurePosixPath(path))
        if key not in texts:
            raise FileNotFoundError(key)
        return texts[key]

    def exists(path: PurePath) -> bool:
        key = str(PurePosixPath(path))
        return key in texts or any(k.startswith(key.rstrip("/") + "/") for k in texts)

    def list_dir(path: PurePath) -> list[tuple[str, bool]] | None:
        prefix = str(PurePosixPath(path)).rstrip("/") + "/"
        entries: dict[str, bool] = {}
        for key in texts:
            if key.startswith(prefix):
                first, _, rest = key[len(prefix) :].partition("/")
                entries[first] = entries.get(first, False) or bool(rest)
        return sorted(entries.items()) or None

    return Sources(PurePosixPath(base_dir), read_text, exists, list_dir)


def is_windows_absolute(text: str) -> bool:
    """`C:\\...`, `C:/...` or a `\\\\server\\share` path."""
    return bool(_WINDOWS_ABSOLUTE.match(text))


@dataclass(frozen=True, slots=True)
class Resolved:
    """A source path made absolute, and how (for the mapping report)."""

    path: str
    note: str = ""


def resolve_path(text: str, sources: Sources, base_dir: PurePath | None = None) -> Resolved:
    """An absolute path for `text` as the source's tool would have found it."""
    base = sources.base_dir if base_dir is None else base_dir
    text = str(Path(text).expanduser()) if text.startswith("~") else text
    if is_windows_absolute(text):
        if isinstance(base, PureWindowsPath) or os.name == "nt":
            return Resolved(os.path.normpath(text))
        return Resolved(PureWindowsPath(text).as_posix(), "a Windows path, kept as written")
    posix = text.replace("\\", "/") if "\\" in text else text
    if PurePosixPath(posix).is_absolute():
        return Resolved(os.path.normpath(posix) if os.name != "nt" else posix)
    relative = PurePosixPath(posix)
    folders = (base, *base.parents)
    for folder in folders:
        candidate = folder.joinpath(*relative.parts)
        if sources.exists(candidate):
            note = "" if folder == base else f"found relative to {folder}"
            return Resolved(_normal(candidate), note)
    # Not there yet (an output folder): where its first folder is, else the source's folder.
    head = [p for p in relative.parts if p not in (".", "")]
    if len(head) > 1:
        for folder in folders[1:]:
            if head[0] != ".." and sources.exists(folder / head[0]):
                return Resolved(
                    _normal(folder.joinpath(*relative.parts)),
                    f"its folder {head[0]} is in {folder}",
                )
    return Resolved(_normal(base.joinpath(*relative.parts)))


def _normal(path: PurePath) -> str:
    text = os.path.normpath(str(path))
    return text.replace("\\", "/") if isinstance(path, PurePosixPath) else text
