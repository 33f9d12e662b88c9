"""Image sizes as sd-scripts reads them, from the file header alone.

Mirrors ``library/train_util.py``'s ``IMAGE_EXTENSIONS`` and ``BaseDataset.get_image_size``:
sizes follow imagesize 1.4.1 (the version sd-scripts pins) and, where imagesize gives up,
Pillow's BMP header reader (sd-scripts' fallback). Kept by hand rather than depending on
imagesize: it must agree exactly with that pinned version and must not loop on corrupt JPEGs
(imagesize 1.4.1 can). Stdlib only.
"""

from __future__ import annotations

import os
import struct

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
PIL_MAX_IMAGE_PIXELS = 1024 * 1024 * 1024 // 4 // 3
"""Pillow's ``Image.MAX_IMAGE_PIXELS`` (89,478,485), which sd-scripts never changes: above it
``Image.open`` warns (DecompressionBombWarning), above twice it raises DecompressionBombError.
Pixels are counted as ``max(1, w) * max(1, h)`` (``Image._decompression_bomb_check``)."""
_PIL_MAX_PIXELS = 2 * PIL_MAX_IMAGE_PIXELS  # Image.open's DecompressionBombError
O_BINARY = getattr(os, "O_BINARY", 0)

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
        fd = os.open(path, os.O_RDONLY | O_BINARY)
    except OSError:
        return None
    return size_and_close(fd)


def size_and_close(fd: int) -> tuple[int, int] | None:
    """The size read from an open file (None when unreadable); closes the file."""
    try:
        return _size_from_fd(fd)
    except (OSError, OverflowError, struct.error):
        return None
    finally:
        os.close(fd)
