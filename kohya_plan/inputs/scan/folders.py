"""Fast, header-only scan of DreamBooth image folders as kohya-ss/sd-scripts sees them.

Mirrors ``library/train_util.py`` (``glob_images``, ``DreamBoothDataset.__init__``) and
``library/config_util.py`` (``generate_dreambooth_subsets_config_by_subdirs``). Image headers
are read by :mod:`.images`, captions judged by :mod:`.captions`. Stdlib only.
"""
# String paths and os.path on purpose: sd-scripts works on path strings (its caption
# fallback splits the whole path), and the scan must stay fast.
# ruff: noqa: PTH113, PTH116, PTH118, PTH119, PTH120, PTH122, PTH207

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kohya_plan.inputs.scan.captions import (
    CaptionState,
    caption_from_bytes,
    read_and_close,
    read_path,
)
from kohya_plan.inputs.scan.images import (
    IMAGE_EXTENSIONS,
    O_BINARY,
    OTHER_IMAGE_EXTENSIONS,
    size_and_close,
)

if TYPE_CHECKING:
    from pathlib import Path

_CASE_INSENSITIVE_FS = sys.platform in ("darwin", "win32")


@dataclass(frozen=True, slots=True)
class RepeatFolder:
    """An immediate subdirectory of a train/reg parent and what its name means to sd-scripts.

    ``iterdir_index`` is its position in directory-listing order, which is sd-scripts'
    subset order; it decides which reg images are used (and padded) when there are several
    reg folders, so build subsets sorted by it, not by name.
    """

    name: str
    path: Path
    repeats: int | None
    class_tokens: str
    iterdir_index: int = 0

    @property
    def used(self) -> bool:
        """sd-scripts makes a subset of it (repeats parsed and >= 1)."""
        return self.repeats is not None and self.repeats >= 1


@dataclass(frozen=True, slots=True)
class ImageEntry:
    """One image sd-scripts will load, in its order.

    ``size`` is what sd-scripts reads from the file (None: it cannot, and crashes or gets
    0x0). ``cached_size`` comes from a latent cache file name when a cache suffix was given;
    sd-scripts then uses it instead of reading the image. ``caption_path`` is set only
    when the face-crop fallback caption file is the one used.
    """

    name: str
    size: tuple[int, int] | None
    caption: CaptionState
    caption_tokens: tuple[str, ...] = ()
    caption_bom: bool = False
    caption_path: str | None = None
    cached_size: tuple[int, int] | None = None

    @property
    def stem(self) -> str:
        """File name without its extension."""
        return os.path.splitext(self.name)[0]

    @property
    def effective_size(self) -> tuple[int, int] | None:
        """The size sd-scripts buckets the image with."""
        return self.cached_size if self.cached_size is not None else self.size


@dataclass(frozen=True, slots=True)
class FolderScan:
    """Result of :func:`scan_folder`.

    ``images`` are exactly the files sd-scripts' glob picks, sorted as it sorts them.
    Folder-level findings: ``duplicate_stems`` (groups of images sharing one caption
    file name), ``wrong_case`` (e.g. ``a.Jpg``, skipped on case-sensitive matching),
    ``unsupported`` (other image formats such as ``.gif``, skipped), ``hidden_images``
    (``.name.png``: glob skips dot files), ``not_files`` (entries matched by the glob
    that are not readable files, e.g. a directory ``x.png``: sd-scripts crashes) and
    ``orphan_captions`` (caption files without an image), ``subfolders`` (folders in it,
    dot folders left out: sd-scripts' glob does not look inside them).
    """

    path: Path
    exists: bool
    is_dir: bool
    images: tuple[ImageEntry, ...] = ()
    duplicate_stems: tuple[tuple[str, ...], ...] = ()
    wrong_case: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = ()
    hidden_images: tuple[str, ...] = ()
    not_files: tuple[str, ...] = ()
    orphan_captions: tuple[str, ...] = ()
    subfolders: tuple[str, ...] = ()
    error: str | None = None

    @property
    def n_images(self) -> int:
        """Number of images sd-scripts finds."""
        return len(self.images)

    @property
    def n_unreadable(self) -> int:
        """Images whose size sd-scripts cannot determine."""
        return sum(1 for e in self.images if e.effective_size is None)

    def caption_counts(self) -> dict[CaptionState, int]:
        """Number of images per caption state."""
        counts: dict[CaptionState, int] = {}
        for e in self.images:
            counts[e.caption] = counts.get(e.caption, 0) + 1
        return counts


# ----------------------------------------------------------------------------- folder names


def parse_repeat_folder_name(name: str) -> tuple[int | None, str]:
    """``(repeats, class_tokens)`` from a folder name, or ``(None, "")`` if not an ``N_`` name.

    Mirrors ``extract_dreambooth_params`` in ``generate_dreambooth_subsets_config_by_subdirs``:
    ``split("_")`` then Python's ``int()`` on the first token, so ``+5_x`` is 5 and
    `` 7_x`` is 7. Values below 1 are returned as parsed; sd-scripts skips them silently.
    """
    tokens = name.split("_")
    try:
        n_repeats = int(tokens[0])
    except ValueError:
        return None, ""
    return n_repeats, "_".join(tokens[1:])


def list_repeat_folders(parent: Path) -> list[RepeatFolder]:
    """Immediate subdirectories of ``parent`` (sd-scripts ignores files there), sorted by name.

    A missing parent gives ``[]``, as in sd-scripts (which says nothing about it).
    """
    if not parent.is_dir():
        return []
    folders = []
    for index, sub in enumerate(d for d in parent.iterdir() if d.is_dir()):
        repeats, tokens = parse_repeat_folder_name(sub.name)
        folders.append(RepeatFolder(sub.name, sub, repeats, tokens, index))
    folders.sort(key=lambda f: f.name)
    return folders


class _DirOpener:
    """Opens files of one directory; relative to a directory fd where the OS allows it.

    Saves the kernel a full path walk per file, which is a large part of a warm scan.
    """

    def __init__(self, dir_str: str) -> None:
        self.dir_str = dir_str
        self.dir_fd: int | None = None

    def __enter__(self) -> _DirOpener:
        if os.open in os.supports_dir_fd:
            try:
                self.dir_fd = os.open(self.dir_str, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError:
                self.dir_fd = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.dir_fd is not None:
            os.close(self.dir_fd)
            self.dir_fd = None

    def _open(self, name: str) -> int:
        if self.dir_fd is not None:
            return os.open(name, os.O_RDONLY, dir_fd=self.dir_fd)
        return os.open(os.path.join(self.dir_str, name), os.O_RDONLY | O_BINARY)

    def image_size(self, name: str) -> tuple[int, int] | None:
        try:
            fd = self._open(name)
        except OSError:
            return None
        return size_and_close(fd)

    def read(self, name: str) -> bytes | None:
        try:
            fd = self._open(name)
        except OSError:
            return None
        return read_and_close(fd)


# ----------------------------------------------------------------------------- folder scan


def _is_hidden(name: str) -> bool:
    return name[:1] == "."


def _entry_is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows links: a linked folder is a folder
    except OSError:  # a link loop, a vanished entry
        return False


def count_images(folder: Path, *, besides: Path | None = None, limit: int = 100_000) -> int:
    """Images sd-scripts' glob would match anywhere below ``folder`` (itself included).

    For folders sd-scripts does NOT read (nested in an image folder): how much is left out.
    Linked folders are followed, each real folder once (by device and inode), so a link loop
    ends; ``besides`` (the image folder that holds ``folder``) is never counted, even through
    a link back up; at most ``limit`` entries are looked at, so a huge tree cannot stall.
    """
    exts = tuple(os.path.normcase(e) for e in IMAGE_EXTENSIONS)
    seen: set[tuple[int, int]] = set()
    if besides is not None:
        try:
            info = os.stat(besides)
            seen.add((info.st_dev, info.st_ino))
        except OSError:
            pass
    stack = [os.fspath(folder)]
    found = looked = 0
    while stack and looked < limit:
        current = stack.pop()
        try:
            info = os.stat(current)
        except OSError:
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen:
            continue
        seen.add(key)
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            looked += 1
            if _is_hidden(entry.name):
                continue
            if _entry_is_dir(entry):
                stack.append(entry.path)
            elif os.path.normcase(entry.name).endswith(exts):
                found += 1
    return found


def _latent_cache_sizes(
    image_paths: list[str], npz_paths: list[str]
) -> list[tuple[int, int] | None]:
    """Sizes sd-scripts takes from latent cache file names (``DreamBoothDataset.__init__``).

    Same merge as sd-scripts, including its prefix comparison (``img.png`` can match
    ``img2_0512x0512_sd.npz`` when ``img``'s own cache is missing).
    """
    npz_paths = list(npz_paths)
    npz_paths.sort(key=lambda item: item.rsplit("_", maxsplit=2)[0])
    out: list[tuple[int, int] | None] = []
    idx = 0
    for img_path in image_paths:
        n = len(os.path.splitext(img_path)[0])
        found = False
        while idx < len(npz_paths):
            if npz_paths[idx][:n] > img_path[:n]:
                break
            if npz_paths[idx][:n] == img_path[:n]:
                found = True
                break
            idx += 1
        size: tuple[int, int] | None = None
        if found:
            try:
                w, h = os.path.splitext(npz_paths[idx])[0].split("_")[-2].split("x")
                size = (int(w), int(h))
            except ValueError:
                size = None  # sd-scripts raises here
        out.append(size)
    return out


def scan_folder(
    path: Path,
    caption_extension: str,
    *,
    sizes: bool = True,
    captions: bool = True,
    caption_tokens: int = 4,
    enable_wildcard: bool = False,
    latent_cache_suffix: str | None = None,
) -> FolderScan:
    """Scan one image folder the way a DreamBooth subset loads it.

    One directory listing, one header read per image, one read per caption file.
    ``path`` should be spelled as sd-scripts will get it: the face-crop caption fallback
    (a path with >= 5 ``_``-separated parts also tries all but the last 4) is computed on
    the full path string, as sd-scripts does. ``latent_cache_suffix`` (``"_sd.npz"`` for
    SD1/2, ``"_sdxl.npz"`` for SDXL) makes it read sizes from existing latent cache file
    names, which sd-scripts prefers to the images.
    """
    dir_str = os.fspath(path)
    try:
        it = os.scandir(dir_str)
    except FileNotFoundError:
        return FolderScan(path, exists=False, is_dir=False)
    except NotADirectoryError:
        return FolderScan(path, exists=True, is_dir=False)
    except OSError as e:
        return FolderScan(path, exists=True, is_dir=True, error=str(e))

    norm = os.path.normcase
    exts = tuple(norm(e) for e in IMAGE_EXTENSIONS)
    image_names: list[str] = []
    files: set[str] = set()
    not_files: list[str] = []
    wrong_case: list[str] = []
    unsupported: list[str] = []
    hidden: list[str] = []
    npz_names: list[str] = []
    subfolders: list[str] = []
    with it:
        for entry in it:
            name = entry.name
            try:
                is_file = entry.is_file()
            except OSError:
                is_file = False
            if is_file:
                files.add(name)
            elif not _is_hidden(name) and _entry_is_dir(entry):
                subfolders.append(name)
            # glob("*.png"): fnmatch on normcase'd names, dot files never match "*"
            if norm(name).endswith(exts):
                if _is_hidden(name):
                    hidden.append(name)
                    continue
                image_names.append(name)
                if not is_file:
                    not_files.append(name)
                continue
            ext = os.path.splitext(name)[1].lower()
            if ext in _LOWER_EXTS:
                wrong_case.append(name)
            elif ext in OTHER_IMAGE_EXTENSIONS and is_file:
                unsupported.append(name)
            if latent_cache_suffix and name.endswith(latent_cache_suffix) and not _is_hidden(name):
                npz_names.append(name)

    image_names.sort()
    not_file_set = set(not_files)

    cached: list[tuple[int, int] | None] | None = None
    if latent_cache_suffix:
        if glob.has_magic(dir_str):
            # sd-scripts globs this one without glob.escape: mirror it literally
            npz_paths = glob.glob(os.path.join(dir_str, "*" + latent_cache_suffix))
        else:
            npz_paths = [os.path.join(dir_str, n) for n in npz_names]
        cached = _latent_cache_sizes([os.path.join(dir_str, n) for n in image_names], npz_paths)

    entries: list[ImageEntry] = []
    stems: dict[str, list[str]] = {}
    fallback_used: set[str] = set()
    used_other_case: set[str] = set()
    own_dir = os.path.dirname(os.path.join(dir_str, "x"))
    folded = {n.lower(): n for n in files} if _CASE_INSENSITIVE_FS else None
    # a file name holds no separator, so only the extension can send us elsewhere
    ext_has_sep = os.sep in caption_extension or bool(os.altsep and os.altsep in caption_extension)
    with _DirOpener(dir_str) as opener:
        for i, name in enumerate(image_names):
            stem = os.path.splitext(name)[0]
            stems.setdefault(stem, []).append(name)

            size: tuple[int, int] | None = None
            if sizes and name not in not_file_set:
                size = opener.image_size(name)

            state = CaptionState.UNCHECKED
            tokens: tuple[str, ...] = ()
            bom = False
            fallback: str | None = None
            if captions:
                cap_name = stem + caption_extension
                data: bytes | None = None
                found = False
                if ext_has_sep:
                    cap_path = os.path.join(dir_str, cap_name)
                    if os.path.isfile(cap_path):
                        found, data = True, read_path(cap_path)
                elif cap_name in files:
                    found, data = True, opener.read(cap_name)
                elif folded is not None and cap_name.lower() in folded:
                    # os.path.isfile on a case-insensitive filesystem finds "a.TXT" for "a.txt"
                    real = folded[cap_name.lower()]
                    found, data = True, opener.read(real)
                    used_other_case.add(real)
                if not found:
                    # read_caption's face-crop name "x_cx_cy_w_h" -> "x", split on the full path
                    parts = os.path.splitext(os.path.join(dir_str, name))[0].split("_")
                    if len(parts) >= 5:
                        alt = "_".join(parts[:-4]) + caption_extension
                        if os.path.isfile(alt):
                            found, data, fallback = True, read_path(alt), alt
                            if os.path.dirname(alt) == own_dir:
                                fallback_used.add(os.path.basename(alt))
                if not found:
                    state = CaptionState.MISSING
                elif data is None:
                    state = CaptionState.UNREADABLE
                else:
                    state, tokens, bom = caption_from_bytes(data, caption_tokens, enable_wildcard)

            entries.append(
                ImageEntry(
                    name,
                    size,
                    state,
                    tokens,
                    bom,
                    fallback,
                    cached[i] if cached is not None else None,
                )
            )

    orphans: tuple[str, ...] = ()
    if caption_extension:
        images_set = set(image_names)
        cut = len(caption_extension)
        orphans = tuple(
            sorted(
                n
                for n in files
                if n.endswith(caption_extension)
                and n[: len(n) - cut] not in stems
                and n not in images_set
                and n not in fallback_used
                and n not in used_other_case
            )
        )

    return FolderScan(
        path,
        exists=True,
        is_dir=True,
        images=tuple(entries),
        duplicate_stems=tuple(tuple(v) for _, v in sorted(stems.items()) if len(v) > 1),
        wrong_case=tuple(sorted(wrong_case)),
        unsupported=tuple(sorted(unsupported)),
        hidden_images=tuple(sorted(hidden)),
        not_files=tuple(sorted(not_files)),
        orphan_captions=orphans,
        subfolders=tuple(sorted(set(subfolders).difference(image_names))),
    )


_LOWER_EXTS = frozenset(e.lower() for e in IMAGE_EXTENSIONS)
