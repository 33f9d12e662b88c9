"""Fast, header-only scan of DreamBooth image folders as kohya-ss/sd-scripts sees them.

Mirrors ``library/train_util.py`` (``IMAGE_EXTENSIONS``, ``glob_images``,
``BaseDataset.get_image_size``, ``DreamBoothDataset.__init__``'s ``read_caption``) and
``library/config_util.py`` (``generate_dreambooth_subsets_config_by_subdirs``).
Image sizes follow imagesize 1.4.1 (the version sd-scripts pins) and, where imagesize
gives up, Pillow's BMP header reader (sd-scripts' fallback). Stdlib only.
"""

# String paths and os.path on purpose: sd-scripts works on path strings (its caption
# fallback splits the whole path), and the scan must stay fast.
# ruff: noqa: PTH113, PTH118, PTH119, PTH120, PTH122, PTH207

from __future__ import annotations

import glob
import os
import struct
import sys
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".webp",
    ".bmp",
    ".PNG",
    ".JPG",
    ".JPEG",
    ".WEBP",
    ".BMP",
)
"""sd-scripts' list without the optional ``.avif``/``.jxl``: those are only added when
``pillow_avif``, ``jxlpy`` or ``pillow_jxl`` is importable, and none of them is in
sd-scripts' ``requirements.txt``."""

OTHER_IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".gif",
        ".tif",
        ".tiff",
        ".avif",
        ".jxl",
        ".heic",
        ".heif",
        ".jfif",
        ".jpe",
        ".pjpeg",
        ".pjp",
        ".apng",
        ".ico",
        ".svg",
        ".psd",
        ".tga",
        ".dds",
        ".exr",
        ".hdr",
        ".dng",
        ".raw",
        ".cr2",
        ".nef",
        ".arw",
    }
)
"""Lower-case extensions of image files that sd-scripts' glob never picks up."""

_HEAD_SIZE = 4096  # one page: the whole header of PNG/WEBP/BMP/GIF and most JPEGs
_CHUNK = 4096
_MAX_JPEG_MARKERS = 100_000  # imagesize loops forever on some corrupt files; we give up
_PIL_MAX_PIXELS = 2 * (1024 * 1024 * 1024 // 4 // 3)  # Image.open's DecompressionBombError
_O_BINARY = getattr(os, "O_BINARY", 0)
# the default filesystems of macOS and Windows ignore case when opening files
_CASE_INSENSITIVE_FS = sys.platform in ("darwin", "win32")


class CaptionState(str, Enum):
    """What sd-scripts makes of an image's caption file."""

    OK = "ok"
    """The first line (stripped) is the caption."""
    MISSING = "missing"
    """No caption file: ``class_tokens`` is used (empty caption plus a warning if None)."""
    EMPTY = "empty"
    """Zero-length file: ``AssertionError: caption file is empty``."""
    BLANK = "blank"
    """First line is whitespace only: trained with an empty caption, no class-token fallback."""
    NOT_UTF8 = "not_utf8"
    """``UnicodeDecodeError`` (the whole file is decoded, not only the first line)."""
    UNREADABLE = "unreadable"
    """The file exists but cannot be read (permissions, ...): sd-scripts crashes."""
    UNCHECKED = "unchecked"
    """Captions were not read (``captions=False``)."""


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
    ``orphan_captions`` (caption files without an image).
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


# ----------------------------------------------------------------------------- image sizes


class _Src:
    """Random access to an open file through one cached window (for the rare long headers)."""

    __slots__ = ("buf", "fd", "start")

    def __init__(self, fd: int, head: bytes) -> None:
        self.fd = fd
        self.buf = head
        self.start = 0

    def at(self, pos: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``pos``: shorter only at end of file."""
        off = pos - self.start
        if off >= 0 and off + n <= len(self.buf):
            return self.buf[off : off + n]
        os.lseek(self.fd, pos, os.SEEK_SET)
        self.buf = os.read(self.fd, max(n, _CHUNK))
        self.start = pos
        return self.buf[:n]


def _jpeg(src: _Src) -> tuple[int, int] | None:
    # imagesize 1.4.1: hop from marker to marker by their lengths until a SOFn, no other
    # validation; running off the end raises ValueError there (uncaught by sd-scripts).
    head = src.buf
    limit = len(head) - 8  # room for fill bytes' end, a length and the SOF fields
    pos = 0
    size = 2
    ftype = 0
    for _ in range(_MAX_JPEG_MARKERS):
        if 0xC0 <= ftype <= 0xCF and ftype not in (0xC4, 0xC8, 0xCC):
            break
        pos += size
        if pos < 0:
            return None  # seek before the start: OSError in imagesize
        if pos < limit:
            # common case, all within the first read: fill bytes, marker, 2-byte length
            p = pos
            byte_ = head[p]
            p += 1
            while byte_ == 0xFF and p < limit:
                byte_ = head[p]
                p += 1
            if byte_ != 0xFF:
                ftype = byte_
                size = ((head[p] << 8) | head[p + 1]) - 2
                pos = p + 2
                continue
        byte = src.at(pos, 1)
        pos += len(byte)
        while byte == b"\xff":
            byte = src.at(pos, 1)
            pos += len(byte)
        if not byte:
            return None
        ftype = byte[0]
        raw = src.at(pos, 2)
        pos += len(raw)
        if len(raw) < 2:
            return None
        size = ((raw[0] << 8) | raw[1]) - 2
    else:
        return None
    data = src.at(pos + 1, 4)  # skip the precision byte
    if len(data) < 4:
        return None
    height, width = struct.unpack(">HH", data)
    return width, height


def _tiff(src: _Src, head: bytes) -> tuple[int, int] | None:
    big = head.startswith(b"MM")
    order = ">" if big else "<"
    offset = struct.unpack(order + "L", head[4:8])[0]
    raw = src.at(offset, 2)
    if len(raw) < 2:
        return None
    count = struct.unpack(order + "H", raw)[0]
    width = height = -1
    pos = offset + 2
    for _ in range(count):
        entry = src.at(pos, 12)
        pos += 12
        if len(entry) < 12:
            return None
        tag, datatype, _n, data = struct.unpack(order + "HHLL", entry)
        if tag in (256, 257):
            if big:
                # imagesize 1.4.1: SHORT sits in the high half of the BE field
                if datatype == 3:
                    value = int(data / 65536)
                elif datatype == 4:
                    value = data
                else:
                    return None
            else:
                value = data
            if tag == 256:
                width = value
            else:
                height = value
        if width != -1 and height != -1:
            return width, height
    return None


def _bigtiff(src: _Src, head: bytes) -> tuple[int, int] | None:
    if len(head) < 16 or struct.unpack("<L", head[4:8])[0] != 8:
        return None
    offset = struct.unpack("<Q", head[8:16])[0]
    raw = src.at(offset, 8)
    if len(raw) < 8:
        return None
    count = struct.unpack("<Q", raw)[0]
    width = height = -1
    pos = offset + 8
    for _ in range(count):
        entry = src.at(pos, 20)
        pos += 20
        if len(entry) < 20:
            return None
        tag, _t, _n, data = struct.unpack("<HHQQ", entry)
        if tag == 256:
            width = data
        elif tag == 257:
            height = data
        if width != -1 and height != -1:
            return width, height
    return None


def _netpbm(src: _Src) -> tuple[int, int] | None:
    # imagesize 1.4.1 reads one byte at a time and steps back one after each number,
    # even at end of file; mirrored including that quirk.
    pos = 2
    sizes: list[int] = []
    while True:
        ch = src.at(pos, 1)
        pos += len(ch)
        if ch.isspace():
            continue
        if ch == b"":
            return None
        if ch == b"#":
            while True:
                c = src.at(pos, 1)
                pos += len(c)
                if c in (b"\n", b""):
                    break
            continue
        if not ch.isdigit():
            return None
        digits = ch
        ch = src.at(pos, 1)
        pos += len(ch)
        while ch.isdigit():
            digits += ch
            ch = src.at(pos, 1)
            pos += len(ch)
        sizes.append(int(digits))
        if len(sizes) == 2:
            return sizes[0], sizes[1]
        pos -= 1


def _webp(head: bytes) -> tuple[int, int] | None:
    kind = head[12:16]
    if kind == b"VP8 ":
        if len(head) < 30:
            return None
        # imagesize 1.4.1 keeps the two scale bits in the 16-bit fields
        w, h = struct.unpack("<HH", head[26:30])
        return w, h
    if kind == b"VP8X":
        if len(head) < 30:
            return None
        # imagesize 1.4.1 forgets the +1 of the canvas size (2.x adds it): one pixel less
        w = head[24] | head[25] << 8 | head[26] << 16
        h = head[27] | head[28] << 8 | head[29] << 16
        return w, h
    if kind == b"VP8L":
        if len(head) < 25:
            return None
        b = head[21:25]
        w = (((b[1] & 63) << 8) | b[0]) + 1
        h = (((b[3] & 15) << 10) | (b[2] << 2) | ((b[1] & 192) >> 6)) + 1
        return w, h
    return None


def _pil_bmp(head: bytes) -> tuple[int, int] | None:
    # Pillow's BmpImagePlugin._bitmap, which sd-scripts reaches because imagesize 1.4.1
    # does not know BMP. Only the checks that can fail on the header are mirrored.
    if len(head) < 18:
        return None
    header_size = struct.unpack_from("<I", head, 14)[0]
    if len(head) < 14 + header_size:
        return None
    if header_size == 12:
        width, height, _planes, bits = struct.unpack_from("<HHHH", head, 18)
        compression = 0
        colors = 0
    elif header_size in (40, 52, 56, 64, 108, 124):
        width, raw_height = struct.unpack_from("<II", head, 18)
        y_flip = head[25] == 0xFF
        height = 2**32 - raw_height if y_flip else raw_height
        bits = struct.unpack_from("<H", head, 28)[0]
        compression = struct.unpack_from("<I", head, 30)[0]
        colors = struct.unpack_from("<I", head, 46)[0]
    else:
        return None
    if bits not in (1, 4, 8, 16, 24, 32):
        return None
    if compression not in (0, 1, 2) and not (compression == 3 and bits in (16, 24, 32)):
        return None
    if bits <= 8 and not 0 < (colors or 1 << bits) <= 65536:
        return None
    if width <= 0 or height <= 0 or max(1, width) * max(1, height) > _PIL_MAX_PIXELS:
        return None
    return width, height


def _size_from_fd(fd: int) -> tuple[int, int] | None:
    head = os.read(fd, _HEAD_SIZE)
    size = _imagesize_141(fd, head)
    if size is None:
        return None
    w, h = size
    if w <= 0:
        # BaseDataset.get_image_size falls back to PIL only when the width is <= 0
        if head.startswith(b"BM"):
            return _pil_bmp(head)
        if head.startswith(b"RIFF") and head[8:16] == b"WEBPVP8X":
            # a 1-pixel-wide VP8X canvas reads as width 0; Pillow decodes the real size
            return w + 1, h + 1
        return None
    if h <= 0:
        return None  # sd-scripts divides by the height
    return w, h


def _imagesize_141(fd: int, head: bytes) -> tuple[int, int] | None:
    """imagesize 1.4.1 ``get``; ``(-1, -1)`` where it knows no format, None where it raises."""
    n = len(head)
    if n >= 10 and head[:6] in (b"GIF87a", b"GIF89a"):
        w, h = struct.unpack("<hh", head[6:10])
        return w, h
    if n >= 24 and head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        w, h = struct.unpack(">LL", head[16:24])
        return w, h
    if n >= 16 and head.startswith(b"\x89PNG\r\n\x1a\n"):
        w, h = struct.unpack(">LL", head[8:16])  # "older PNG": chunk length and type
        return w, h
    if n >= 2 and head.startswith(b"\xff\xd8"):
        return _jpeg(_Src(fd, head))
    if n >= 12 and head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n"):
        data = _Src(fd, head).at(48, 8)
        if len(data) < 8:
            return None
        h, w = struct.unpack(">LL", data)
        return w, h
    if n >= 8 and head.startswith((b"MM\x00\x2a", b"II\x2a\x00")):
        return _tiff(_Src(fd, head), head)
    if n >= 8 and head.startswith(b"II\x2b\x00"):
        return _bigtiff(_Src(fd, head), head)
    if n >= 5 and head.startswith((b"<?xml", b"<svg")):
        return None  # float sizes from SVG attributes; Pillow cannot load SVG anyway
    if head[:1] == b"P" and head[1:2] in b"123456":
        return _netpbm(_Src(fd, head))
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _webp(head)
    return -1, -1


def read_image_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(width, height)`` as sd-scripts reads it, or None where sd-scripts cannot.

    Decided by content, not extension, like imagesize 1.4.1: PNG, JPEG (first SOFn,
    EXIF orientation ignored), WEBP (VP8, VP8L, VP8X), GIF, TIFF, JPEG 2000, Netpbm; BMP
    through Pillow's header rules. None also for a non-positive dimension and for
    formats only full Pillow could open (rare outside these extensions).
    """
    try:
        fd = os.open(path, os.O_RDONLY | _O_BINARY)
    except OSError:
        return None
    return _size_and_close(fd)


def _size_and_close(fd: int) -> tuple[int, int] | None:
    """The size read from an open file (None when unreadable); closes the file."""
    try:
        return _size_from_fd(fd)
    except (OSError, OverflowError, struct.error):
        return None
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- captions


def _caption_from_bytes(
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
    # with wildcards every non-blank line counts; they are all blank iff the text is
    blank = not text.strip() if enable_wildcard else not first
    if blank:
        return CaptionState.BLANK, (), False
    # U+FEFF is not whitespace: sd-scripts keeps a UTF-8 BOM in the caption
    bom = first.startswith("\ufeff")
    if bom:
        first = first.lstrip("\ufeff").strip()
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


def _read_path(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | _O_BINARY)
    except OSError:
        return None
    return _read_and_close(fd)


def _read_and_close(fd: int) -> bytes | None:
    """A whole open file's bytes (None when reading fails); closes the file."""
    try:
        return _read_fd(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


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
        return os.open(os.path.join(self.dir_str, name), os.O_RDONLY | _O_BINARY)

    def image_size(self, name: str) -> tuple[int, int] | None:
        try:
            fd = self._open(name)
        except OSError:
            return None
        return _size_and_close(fd)

    def read(self, name: str) -> bytes | None:
        try:
            fd = self._open(name)
        except OSError:
            return None
        return _read_and_close(fd)


# ----------------------------------------------------------------------------- folder scan


def _is_hidden(name: str) -> bool:
    return name[:1] == "."


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
    with it:
        for entry in it:
            name = entry.name
            try:
                is_file = entry.is_file()
            except OSError:
                is_file = False
            if is_file:
                files.add(name)
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
                        found, data = True, _read_path(cap_path)
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
                            found, data, fallback = True, _read_path(alt), alt
                            if os.path.dirname(alt) == own_dir:
                                fallback_used.add(os.path.basename(alt))
                if not found:
                    state = CaptionState.MISSING
                elif data is None:
                    state = CaptionState.UNREADABLE
                else:
                    state, tokens, bom = _caption_from_bytes(data, caption_tokens, enable_wildcard)

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
    )


_LOWER_EXTS = frozenset(e.lower() for e in IMAGE_EXTENSIONS)
