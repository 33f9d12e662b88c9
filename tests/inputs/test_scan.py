"""kohya_plan.inputs.scan: header sizes, folder names, captions and folder findings.

Image files are generated here (headers are all a size reader needs). Sizes are compared
with the installed ``imagesize``; sd-scripts pins imagesize 1.4.1, whose known
differences from 2.x (no EXIF rotation, VP8X one pixel smaller, no BMP: Pillow
fallback) are applied explicitly. Tests marked ``sdscripts`` compare against the real
sd-scripts code (``BaseDataset.get_image_size``, ``read_caption`` via a DreamBooth
dataset) run by the interpreter of ``.venv-sd`` (or ``$KOHYA_SD_PYTHON``).
"""

from __future__ import annotations

import json
import os
import random
import re
import struct
import subprocess
import sys
import zlib
from typing import TYPE_CHECKING

import imagesize
import pytest
import sdlab
from helpers import REPO

from kohya_plan.inputs.scan import (
    IMAGE_EXTENSIONS,
    CaptionState,
    list_repeat_folders,
    parse_repeat_folder_name,
    read_image_size,
    scan_folder,
)

if TYPE_CHECKING:
    from pathlib import Path

ROOT = REPO
# $KOHYA_SD_SCRIPTS, else vendor/sd-scripts (as kohya-plan itself looks).
SD_SCRIPTS = sdlab.sd_scripts_dir() or ROOT / "vendor" / "sd-scripts"
IMAGESIZE_2 = not str(getattr(imagesize, "__version__", "1")).startswith("1.")


# ----------------------------------------------------------------------------- generators


def png(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def _seg(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def exif_orientation(value: int) -> bytes:
    ifd = struct.pack(">H", 1) + struct.pack(">HHLL", 0x0112, 3, 1, value << 16) + b"\0\0\0\0"
    return b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + ifd


def jpeg(
    w: int,
    h: int,
    *,
    sof: int = 0xC0,
    app: tuple[tuple[int, bytes], ...] = (),
    fill: int = 0,
    dht_first: bool = False,
) -> bytes:
    out = b"\xff\xd8" + _seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    for marker, payload in app:
        out += _seg(marker, payload)
    out += _seg(0xDB, b"\x00" + bytes(64))
    if dht_first:
        out += _seg(0xC4, b"\x00" + bytes(16) + b"\x00")
    out += b"\xff" * fill  # fill bytes before a marker are legal
    out += _seg(sof, struct.pack(">BHHB", 8, h, w, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01")
    return out + _seg(0xDA, b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00") + b"\x00\xff\xd9"


def _riff(kind: bytes, payload: bytes) -> bytes:
    chunk = kind + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def webp_vp8(w: int, h: int) -> bytes:
    frame = b"\x9d\x01\x2a" + struct.pack("<HH", w & 0x3FFF, h & 0x3FFF) + bytes(10)
    return _riff(b"VP8 ", b"\x10\x02\x00" + frame)


def webp_vp8l(w: int, h: int) -> bytes:
    bits = (w - 1) | ((h - 1) << 14)
    return _riff(b"VP8L", b"\x2f" + struct.pack("<I", bits) + bytes(8))


def webp_vp8x(w: int, h: int) -> bytes:
    dims = (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    return _riff(b"VP8X", b"\x00\x00\x00\x00" + dims) + b"VP8L" + struct.pack("<I", 0)


def bmp(w: int, h: int, *, top_down: bool = False, header: int = 40, bits: int = 24) -> bytes:
    if header == 12:
        dib = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        hh = (-h) & 0xFFFFFFFF if top_down else h
        dib = struct.pack("<IIIHHIIIIII", header, w, hh, 1, bits, 0, 0, 2835, 2835, 0, 0)
        dib += bytes(header - len(dib))
    offset = 14 + len(dib)
    return b"BM" + struct.pack("<IHHI", offset + 16, 0, 0, offset) + dib + bytes(16)


def gif(w: int, h: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", w, h) + b"\x00\x00\x00" + b"\x3b"


def imagesize_141(path: Path) -> tuple[int, int]:
    """What imagesize 1.4.1 returns, derived from the installed version."""
    if not IMAGESIZE_2:
        w, h = imagesize.get(str(path))
        return int(w), int(h)
    w, h = imagesize.get(str(path), exif_rotation=False)
    data = path.read_bytes()
    if data[:4] == b"RIFF" and data[12:16] == b"VP8X":
        return w - 1, h - 1  # 1.4.1 forgets the +1
    return int(w), int(h)


# ----------------------------------------------------------------------------- sizes

FORMATS = {
    "png": (png, ".png"),
    "jpeg": (jpeg, ".jpg"),
    "webp-vp8": (webp_vp8, ".webp"),
    "webp-vp8l": (webp_vp8l, ".webp"),
    "webp-vp8x": (webp_vp8x, ".webp"),
    "bmp": (bmp, ".bmp"),
    "gif": (gif, ".png"),  # GIF content under an accepted name: imagesize sniffs content
}
SIZES = [(1, 1), (64, 48), (512, 512), (767, 1025), (1920, 1080), (4000, 3000), (16383, 2)]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("upper", [False, True])
def test_header_size_matches_imagesize(tmp_path: Path, fmt: str, upper: bool) -> None:
    make, ext = FORMATS[fmt]
    for w, h in SIZES:
        p = tmp_path / f"img_{w}x{h}{ext.upper() if upper else ext}"
        p.write_bytes(make(w, h))
        expected = (w - 1, h - 1) if fmt == "webp-vp8x" else (w, h)
        if expected[0] <= 0:
            # imagesize gives width 0 -> sd-scripts asks Pillow, which decodes the real size
            assert read_image_size(p) == (w, h), (fmt, w, h)
            continue
        if expected[1] <= 0:
            assert read_image_size(p) is None  # (w, 0) is used as is: division by zero
            continue
        assert read_image_size(p) == expected, (fmt, w, h)
        assert read_image_size(p) == imagesize_141(p), (fmt, w, h)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(jpeg(640, 480, sof=0xC2), id="progressive-sof2"),
        pytest.param(jpeg(640, 480, sof=0xC1), id="sof1"),
        pytest.param(jpeg(640, 480, dht_first=True), id="dht-before-sof"),
        pytest.param(jpeg(640, 480, fill=5), id="fill-bytes"),
        pytest.param(jpeg(640, 480, app=((0xE1, b"Exif\0\0" + bytes(30000)),)), id="big-exif"),
        pytest.param(
            jpeg(640, 480, app=((0xE2, bytes(4090)), (0xED, bytes(9000)))), id="app2-app13"
        ),
        pytest.param(jpeg(640, 480, app=((0xFE, b"comment"),)), id="comment"),
    ],
)
def test_jpeg_variants(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "x.jpg"
    p.write_bytes(data)
    assert read_image_size(p) == (640, 480) == imagesize_141(p)


def test_jpeg_exif_orientation_is_ignored(tmp_path: Path) -> None:
    # sd-scripts neither rotates when reading the size (imagesize 1.4.1) nor when loading
    p = tmp_path / "phone.JPG"
    p.write_bytes(jpeg(4032, 3024, app=((0xE1, exif_orientation(6)),)))
    assert read_image_size(p) == (4032, 3024) == imagesize_141(p)
    if IMAGESIZE_2:
        assert imagesize.get(str(p)) == (3024, 4032)  # 2.x rotates by default: don't use it


def test_bmp_variants_match_pillow(tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    cases = [
        bmp(300, 200, top_down=True),
        bmp(300, 200, header=12),
        bmp(300, 200, header=124, bits=32),
        bmp(5, 7, bits=8),
    ]
    for i, data in enumerate(cases):
        p = tmp_path / f"{i}.bmp"
        p.write_bytes(data)
        with pil.open(p) as im:
            assert read_image_size(p) == im.size, i


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not an image at all", id="text"),
        pytest.param(jpeg(640, 480)[:40], id="truncated-jpeg"),
        pytest.param(png(0, 10), id="png-zero-width"),
        pytest.param(png(10, 0), id="png-zero-height"),
        pytest.param(webp_vp8(300, 200)[:20], id="truncated-webp"),
        pytest.param(_riff(b"ALPH", bytes(20)), id="webp-unknown-chunk"),
        pytest.param(bmp(10, 10, bits=3), id="bmp-bad-depth"),
        pytest.param(b"<svg width='10' height='10'/>", id="svg"),
    ],
)
def test_unreadable_sizes_are_none(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "bad.png"
    p.write_bytes(data)
    assert read_image_size(p) is None


def test_missing_file_size_is_none(tmp_path: Path) -> None:
    assert read_image_size(tmp_path / "nope.png") is None
    assert read_image_size(tmp_path) is None


def test_image_extensions_are_sd_scripts_base_list() -> None:
    src = SD_SCRIPTS / "library" / "train_util.py"
    if not src.is_file():
        pytest.skip(f"sd-scripts is not checked out: {sdlab.SUBMODULE_HINT}")
    m = re.search(r"^IMAGE_EXTENSIONS = (\[.*?\])$", src.read_text(encoding="utf-8"), re.M)
    assert m is not None
    assert list(IMAGE_EXTENSIONS) == json.loads(m.group(1).replace("'", '"'))
    assert ".avif" not in IMAGE_EXTENSIONS
    assert ".jxl" not in IMAGE_EXTENSIONS


# ----------------------------------------------------------------------------- folder names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("10_sks dog", (10, "sks dog")),
        ("10_a_b", (10, "a_b")),
        ("10", (10, "")),
        ("10_", (10, "")),
        ("+5_x", (5, "x")),
        (" 7_x", (7, "x")),
        ("007_x", (7, "x")),
        ("0_x", (0, "x")),
        ("-1_x", (-1, "x")),
        ("abc", (None, "")),
        ("dog_10", (None, "")),
        (".ipynb_checkpoints", (None, "")),
        ("1.5_x", (None, "")),
        ("", (None, "")),
    ],
)
def test_parse_repeat_folder_name(name: str, expected: tuple[int | None, str]) -> None:
    assert parse_repeat_folder_name(name) == expected


def test_list_repeat_folders(tmp_path: Path) -> None:
    for d in ("5_b", "10_sks dog", "abc", "0_zero"):
        (tmp_path / d).mkdir()
    (tmp_path / "3_file.txt").write_text("x")
    folders = list_repeat_folders(tmp_path)
    assert [f.name for f in folders] == ["0_zero", "10_sks dog", "5_b", "abc"]
    assert [(f.repeats, f.class_tokens, f.used) for f in folders] == [
        (0, "zero", False),
        (10, "sks dog", True),
        (5, "b", True),
        (None, "", False),
    ]
    listing = [p.name for p in tmp_path.iterdir() if p.is_dir()]
    assert sorted(folders, key=lambda f: f.iterdir_index) == sorted(
        folders, key=lambda f: listing.index(f.name)
    )
    assert list_repeat_folders(tmp_path / "missing") == []


# ----------------------------------------------------------------------------- scan_folder


def _write(d: Path, name: str, data: bytes | str) -> None:
    p = d / name
    if isinstance(data, str):
        p.write_bytes(data.encode("utf-8"))
    else:
        p.write_bytes(data)


def test_caption_states(tmp_path: Path) -> None:
    d = tmp_path / "10_sks"
    d.mkdir()
    cases: dict[str, bytes | None] = {
        "ok": b"sks dog, red collar, grass, outdoors, sunny\nsecond line",
        "missing": None,
        "empty": b"",
        "blank": b"   \nsks dog",
        "newline": b"\n",
        "notutf8": b"sks dog\n\xff\xfe bad",
        "bom": b"\xef\xbb\xbfsks dog, smiling",
        "crlf": b"a, b\r\nc",
        "cr": b"first\rsecond",
        "onlybom": b"\xef\xbb\xbf",
    }
    for stem, cap in cases.items():
        _write(d, f"{stem}.png", png(64, 64))
        if cap is not None:
            _write(d, f"{stem}.txt", cap)
    scan = scan_folder(d, ".txt")
    by = {e.stem: e for e in scan.images}
    assert [e.name for e in scan.images] == sorted(f"{s}.png" for s in cases)
    assert by["ok"].caption is CaptionState.OK
    assert by["ok"].caption_tokens == ("sks dog", "red collar", "grass", "outdoors")
    assert by["missing"].caption is CaptionState.MISSING
    assert by["empty"].caption is CaptionState.EMPTY
    assert by["blank"].caption is CaptionState.BLANK
    assert by["newline"].caption is CaptionState.BLANK
    assert by["notutf8"].caption is CaptionState.NOT_UTF8
    assert by["bom"].caption is CaptionState.OK
    assert by["bom"].caption_bom
    assert by["bom"].caption_tokens == ("sks dog", "smiling")
    assert by["crlf"].caption_tokens == ("a", "b")
    assert by["cr"].caption_tokens == ("first",)
    # U+FEFF is not whitespace to str.strip(): sd-scripts' caption is "\ufeff", which the
    # CLIP tokenizer drops (tests/inputs/test_dataset_truth.py): an empty caption
    assert by["onlybom"].caption is CaptionState.BLANK
    assert by["onlybom"].caption_bom
    assert all(e.size == (64, 64) for e in scan.images)
    counts = scan.caption_counts()
    assert counts[CaptionState.OK] == 4
    assert counts[CaptionState.BLANK] == 3


def test_wildcard_blank_first_line(tmp_path: Path) -> None:
    _write(tmp_path, "a.png", png(8, 8))
    _write(tmp_path, "a.txt", "\n  \nsecond")
    assert scan_folder(tmp_path, ".txt").images[0].caption is CaptionState.BLANK
    wild = scan_folder(tmp_path, ".txt", enable_wildcard=True).images[0]
    assert wild.caption is CaptionState.OK


def test_folder_findings(tmp_path: Path) -> None:
    for name in ("a.png", "a.jpg", "b.PNG", "c.Jpg", "d.gif", ".hidden.png", "e.webp"):
        _write(tmp_path, name, png(32, 32))
    (tmp_path / "dir.png").mkdir()
    _write(tmp_path, "a.txt", "x")
    _write(tmp_path, "orphan.txt", "y")
    _write(tmp_path, "notes.md", "z")
    scan = scan_folder(tmp_path, ".txt", captions=False)
    names = [e.name for e in scan.images]
    assert names == sorted(["a.jpg", "a.png", "b.PNG", "dir.png", "e.webp"])
    assert scan.duplicate_stems == (("a.jpg", "a.png"),)
    if os.path.normcase("A") == "A":  # case-sensitive matching (POSIX): .Jpg is skipped
        assert scan.wrong_case == ("c.Jpg",)
    assert scan.unsupported == ("d.gif",)
    assert scan.hidden_images == (".hidden.png",)
    assert scan.not_files == ("dir.png",)
    assert scan.orphan_captions == ("orphan.txt",)
    by = {e.name: e for e in scan.images}
    assert by["dir.png"].size is None
    assert by["a.png"].caption is CaptionState.UNCHECKED
    assert scan.n_images == 5
    assert scan.n_unreadable == 1


def test_scan_missing_and_file(tmp_path: Path) -> None:
    missing = scan_folder(tmp_path / "nope", ".txt")
    assert (missing.exists, missing.is_dir, missing.images) == (False, False, ())
    f = tmp_path / "f.png"
    f.write_bytes(png(1, 1))
    as_file = scan_folder(f, ".txt")
    assert (as_file.exists, as_file.is_dir) == (True, False)


def test_sizes_off(tmp_path: Path) -> None:
    _write(tmp_path, "a.png", png(8, 8))
    assert scan_folder(tmp_path, ".txt", sizes=False).images[0].size is None


def test_face_crop_caption_fallback(tmp_path: Path) -> None:
    d = tmp_path / "10_face"
    d.mkdir()
    _write(d, "anna_120_80_64_64.png", png(256, 256))
    _write(d, "anna.txt", "anna, portrait")
    # 3 underscores in the name: sd-scripts splits the WHOLE path, so the fallback name
    # reaches into the folder name ("…/10" + ".txt" next to the folder)
    _write(d, "x_1_2_3.png", png(256, 256))
    _write(tmp_path, "10.txt", "from the parent")
    scan = scan_folder(d, ".txt")
    by = {e.name: e for e in scan.images}
    assert by["anna_120_80_64_64.png"].caption_tokens == ("anna", "portrait")
    assert by["anna_120_80_64_64.png"].caption_path == str(d / "anna.txt")
    assert by["x_1_2_3.png"].caption_tokens == ("from the parent",)
    assert scan.orphan_captions == ()


def test_latent_cache_sizes(tmp_path: Path) -> None:
    _write(tmp_path, "img.png", png(100, 100))
    _write(tmp_path, "img_0512x0768_sd.npz", b"")
    _write(tmp_path, "a.png", png(10, 10))
    _write(tmp_path, "ab_0064x0032_sd.npz", b"")  # prefix match: a.png takes this size
    _write(tmp_path, "z.png", png(20, 20))
    scan = scan_folder(tmp_path, ".txt", latent_cache_suffix="_sd.npz")
    by = {e.name: e for e in scan.images}
    assert by["img.png"].cached_size == (512, 768)
    assert by["img.png"].effective_size == (512, 768)
    assert by["a.png"].cached_size == (64, 32)
    assert by["z.png"].cached_size is None
    assert by["z.png"].effective_size == (20, 20)
    assert scan_folder(tmp_path, ".txt").images[0].cached_size is None


# ----------------------------------------------------------------------------- sd-scripts


def _sd_python() -> Path:
    return sdlab.require_sd_python()


_ORACLE = r"""
import json, os, sys
sys.path.insert(0, os.getcwd())
import logging
logging.disable(logging.CRITICAL)
from library import train_util, config_util
req = json.load(sys.stdin)
out = {"sizes": {}, "captions": None}
for p in req["paths"]:
    try:
        out["sizes"][p] = list(train_util.BaseDataset.get_image_size(None, p))
    except Exception as e:
        out["sizes"][p] = type(e).__name__
if req.get("config"):
    import argparse
    import train_network
    args = train_network.setup_parser().parse_args(["--dataset_config", req["config"]])
    train_util.prepare_dataset_args(args, True)
    bg = config_util.BlueprintGenerator(config_util.ConfigSanitizer(True, True, False, True))
    bp = bg.generate(config_util.load_user_config(args.dataset_config), args)
    try:
        g, _ = config_util.generate_dataset_group_by_blueprint(bp.dataset_group)
        out["captions"] = {k: v.caption for k, v in g.image_data.items()}
    except Exception as e:
        out["captions"] = type(e).__name__
print("ORACLE" + json.dumps(out))
"""


def _oracle(paths: list[Path], config: Path | None = None) -> dict[str, object]:
    req = {"paths": [str(p) for p in paths], "config": str(config) if config else None}
    proc = subprocess.run(
        [str(_sd_python()), "-c", _ORACLE],
        input=json.dumps(req),
        capture_output=True,
        text=True,
        cwd=SD_SCRIPTS,
        timeout=300,
        check=False,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("ORACLE")), None)
    assert line is not None, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(line[len("ORACLE") :])
    return result


@pytest.mark.sdscripts
def test_sizes_match_sd_scripts_get_image_size(tmp_path: Path) -> None:
    rng = random.Random(1234)
    files: list[Path] = []

    def add(name: str, data: bytes) -> None:
        p = tmp_path / name
        p.write_bytes(data)
        files.append(p)

    for i in range(40):
        w, h = rng.randint(1, 9000), rng.randint(1, 9000)
        add(f"p{i}.png", png(w, h))
        add(f"j{i}.jpg", jpeg(w, h, sof=rng.choice([0xC0, 0xC1, 0xC2]), fill=rng.randint(0, 3)))
        add(f"x{i}.JPEG", jpeg(w, h, app=((0xE1, exif_orientation(rng.randint(1, 8))),)))
        add(f"w{i}.webp", webp_vp8(min(w, 16383), min(h, 16383)))
        add(f"l{i}.webp", webp_vp8l(min(w, 16384), min(h, 16384)))
        add(f"v{i}.WEBP", webp_vp8x(max(w, 2), h))  # width 1: Pillow must decode
        add(f"b{i}.bmp", bmp(w, h, top_down=rng.random() < 0.5))
        add(f"g{i}.png", gif(min(w, 32767), min(h, 32767)))
    add("big_exif.jpg", jpeg(640, 480, app=((0xE1, b"Exif\0\0" + bytes(60000)),)))
    add("trunc.jpg", jpeg(640, 480)[:60])
    add("text.png", b"hello world, not an image")
    add("empty.png", b"")
    add("zero.png", png(0, 5))
    add("bmp12.bmp", bmp(123, 45, header=12))
    add("bmp_bad.bmp", bmp(10, 10, bits=3))
    add("riff_short.webp", b"RIFF\0\0\0\0WEBPVP8 ")
    add(
        "tiff_le.png",
        b"II*\x00\x08\x00\x00\x00\x02\x00"
        + struct.pack("<HHLL", 256, 3, 1, 77)
        + struct.pack("<HHLL", 257, 3, 1, 55)
        + bytes(4),
    )
    add("pgm.png", b"P5\n# comment\n 31 17\n255\n" + bytes(31 * 17))
    add("png_old.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dCgBI" + bytes(20))

    sd = _oracle(files)["sizes"]
    assert isinstance(sd, dict)
    for p in files:
        theirs = sd[str(p)]
        ours = read_image_size(p)
        if isinstance(theirs, list) and theirs[0] > 0 and theirs[1] > 0:
            assert ours == tuple(theirs), p.name
        else:
            assert ours is None, (p.name, theirs)


@pytest.mark.sdscripts
def test_captions_match_sd_scripts(tmp_path: Path) -> None:
    d = tmp_path / "imgs"
    d.mkdir()
    caps = {
        "a": "sks dog, red\nignored",
        "b": None,
        "c": "   \n",
        "d": "\ufeffsks, bom",
        "e": "x\r\ny",
        "f_1_2_3_4": None,
        "f": "face, crop",
    }
    for stem, cap in caps.items():
        _write(d, f"{stem}.png", png(64, 64))
        if cap is not None:
            _write(d, f"{stem}.txt", cap)
    config = tmp_path / "ds.toml"
    config.write_text(
        "[[datasets]]\nresolution = 64\n[[datasets.subsets]]\n"
        f"image_dir = {json.dumps(str(d))}\ncaption_extension = '.txt'\nclass_tokens = 'CLS'\n",
        encoding="utf-8",
    )
    theirs = _oracle([], config)["captions"]
    assert isinstance(theirs, dict)
    scan = scan_folder(d, ".txt")
    for e in scan.images:
        cap = theirs[str(d / e.name)]
        if e.caption is CaptionState.MISSING:
            assert cap == "CLS", e.name
        elif e.caption is CaptionState.BLANK:
            assert cap == "", e.name
        else:
            assert e.caption is CaptionState.OK
            assert [t.strip() for t in cap.lstrip("\ufeff").split(",")][:4] == list(
                e.caption_tokens
            ), e.name
            assert e.caption_bom == cap.startswith("\ufeff")

    for bad, expected in ((b"", "AssertionError"), (b"ok\n\xff", "UnicodeDecodeError")):
        (d / "a.txt").write_bytes(bad)
        assert _oracle([], config)["captions"] == expected
        state = {e.name: e.caption for e in scan_folder(d, ".txt").images}["a.png"]
        assert state is (CaptionState.EMPTY if not bad else CaptionState.NOT_UTF8)


@pytest.mark.integration  # starts a Python (or git) subprocess
def test_no_third_party_imports_in_scan() -> None:
    code = (
        "import sys, kohya_plan.inputs.scan, kohya_plan.steps.buckets, kohya_plan.steps.count;"
        "bad=[m for m in ('imagesize','PIL','numpy') if m in sys.modules];"
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
