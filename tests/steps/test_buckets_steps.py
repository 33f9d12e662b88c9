"""kohya_plan.steps.buckets and kohya_plan.steps.count against sd-scripts' numbers.

Hand-checked cases and the worked examples of the contract (§5) run everywhere. Tests
marked ``sdscripts`` run the real ``BucketManager`` and the real DreamBooth dataset
construction (``config_util.generate_dataset_group_by_blueprint``) with the interpreter
of ``.venv-sd`` (or ``$KOHYA_SD_PYTHON``) and compare every number.
"""

from __future__ import annotations

import json
import math
import random
import struct
import subprocess
import zlib
from typing import TYPE_CHECKING

import pytest
import sdlab
from helpers import REPO

from kohya_plan.inputs.scan import list_repeat_folders, scan_folder
from kohya_plan.steps.buckets import (
    BucketError,
    BucketSelector,
    adjust_min_max_bucket_reso,
    make_bucket_resolutions,
    round_to_steps,
)
from kohya_plan.steps.count import (
    DEFAULT_MAX_TRAIN_STEPS,
    DatasetSpec,
    SubsetImages,
    _register_reg_images,
    batches_per_epoch,
    prepared_dataloader_length,
    total_steps,
    tutorial_formula,
)

if TYPE_CHECKING:
    from pathlib import Path

ROOT = REPO
# $KOHYA_SD_SCRIPTS, else vendor/sd-scripts (as kohya-plan itself looks).
SD_SCRIPTS = sdlab.sd_scripts_dir() or ROOT / "vendor" / "sd-scripts"

BUCKETS_512 = [
    (256, 832), (256, 896), (256, 960), (256, 1024), (320, 704), (320, 768), (384, 640),
    (448, 576), (512, 512), (576, 448), (640, 384), (704, 320), (768, 320), (832, 256),
    (896, 256), (960, 256), (1024, 256),
]  # fmt: skip


# ----------------------------------------------------------------------------- buckets


def test_default_512_buckets() -> None:
    assert make_bucket_resolutions((512, 512), 256, 1024, 64) == BUCKETS_512
    assert make_bucket_resolutions((512, 512)) == BUCKETS_512


def test_fixture_buckets() -> None:
    resos = make_bucket_resolutions((128, 128), 64, 256, 64)
    assert resos == [(64, 192), (64, 256), (128, 128), (192, 64), (256, 64)]


def test_adjust_min_max() -> None:
    assert adjust_min_max_bucket_reso((512, 512), 250, 1000, 64) == (192, 1024)
    assert adjust_min_max_bucket_reso((512, 512), 256, 1024, 64) == (256, 1024)
    with pytest.raises(BucketError, match="min_bucket_reso must be equal or less"):
        adjust_min_max_bucket_reso((512, 512), 576, 1024, 64)
    with pytest.raises(BucketError, match="max_bucket_reso must be equal or greater"):
        adjust_min_max_bucket_reso((1024, 512), 256, 960, 64)


def test_round_to_steps() -> None:
    assert round_to_steps(591.2, 64) == 576
    assert round_to_steps(63.5, 64) == 64
    assert round_to_steps(63.4, 64) == 0


@pytest.mark.parametrize(
    ("size", "reso", "resized"),
    [
        ((512, 512), (512, 512), (512, 512)),
        ((1024, 1024), (512, 512), (512, 512)),
        ((768, 512), (640, 384), (640, 427)),
        ((512, 768), (384, 640), (427, 640)),
        ((320, 768), (320, 768), (320, 768)),  # exact bucket size wins
        ((3000, 100), (1024, 256), (7680, 256)),
        ((100, 3000), (256, 1024), (256, 7680)),
    ],
)
def test_select_bucket_512(
    size: tuple[int, int], reso: tuple[int, int], resized: tuple[int, int]
) -> None:
    sel = BucketSelector.for_dataset((512, 512), enable_bucket=True)
    choice = sel.select_bucket(*size)
    assert (choice.reso, choice.resized_size) == (reso, resized)
    assert choice.ar_error == reso[0] / reso[1] - size[0] / size[1]


def test_select_bucket_tie_takes_first() -> None:
    sel = BucketSelector(
        no_upscale=False, max_reso=(512, 512), reso_steps=64, predefined=[(256, 512), (512, 256)]
    )
    assert sel.select_bucket(500, 400).reso == (256, 512)  # |0.5-1.25| == |2-1.25|


def test_no_upscale() -> None:
    sel = BucketSelector.for_dataset((512, 512), enable_bucket=True, bucket_no_upscale=True)
    assert sel.predefined_resos == []
    assert sel.select_bucket(300, 200).reso == (256, 192)
    c = sel.select_bucket(1024, 768)
    assert (c.reso, c.resized_size) == ((512, 384), (512, 384))
    with pytest.raises(BucketError):
        sel.select_bucket(50, 500)  # bucket width 0
    with pytest.raises(BucketError):
        sel.select_bucket(100_000, 100)  # too elongated: ZeroDivisionError in sd-scripts


def test_no_bucket_mode() -> None:
    sel = BucketSelector.for_dataset((512, 768), enable_bucket=False)
    assert sel.select_bucket(100, 3000).reso == (512, 768)
    assert sel.select_bucket(512, 768).resized_size == (512, 768)
    with pytest.raises(BucketError):
        sel.select_bucket(0, 10)


def _transcribed_select(resos: list[tuple[int, int]], w: int, h: int) -> tuple[int, int]:
    """BucketManager.select_bucket (default mode) transcribed with numpy's semantics."""
    ar = w / h
    if (w, h) in set(resos):
        return (w, h)
    errs = [abs(rw / rh - ar) for rw, rh in resos]
    return resos[errs.index(min(errs))]


def test_select_bucket_random_against_transcription() -> None:
    rng = random.Random(7)
    for res, lo, hi, step in [((512, 512), 256, 1024, 64), ((1024, 1024), 256, 2048, 64),
                              ((768, 512), 320, 1280, 32), ((128, 128), 64, 256, 64)]:  # fmt: skip
        sel = BucketSelector.for_dataset(
            res, enable_bucket=True, min_bucket_reso=lo, max_bucket_reso=hi, bucket_reso_steps=step
        )
        resos = make_bucket_resolutions(res, lo, hi, step)
        for _ in range(3000):
            w, h = rng.randint(1, 6000), rng.randint(1, 6000)
            assert sel.select_bucket(w, h).reso == _transcribed_select(resos, w, h)


# ----------------------------------------------------------------------------- steps


def _subset(size: tuple[int, int], n: int, repeats: int, is_reg: bool = False) -> SubsetImages:
    return SubsetImages([size] * n, repeats, is_reg)


def test_worked_examples_contract_5_3() -> None:
    base = DatasetSpec([_subset((512, 512), 20, 10)], batch_size=2, resolution=(512, 512))
    bc = batches_per_epoch([base])
    assert (bc.total, bc.train_samples, bc.reg_samples) == (100, 200, 0)
    assert total_steps(bc.total, epochs=10).total_optimization_steps == 1000

    with_reg = DatasetSpec(
        [_subset((512, 512), 20, 10), _subset((512, 512), 100, 1, is_reg=True)],
        batch_size=2,
        resolution=(512, 512),
    )
    bc = batches_per_epoch([with_reg])
    assert (bc.total, bc.reg_images, bc.reg_samples) == (200, 100, 200)
    r = total_steps(bc.total, epochs=10)
    assert (r.total_optimization_steps, r.epochs, r.epochs_override_steps) == (2000, 10, True)
    r = total_steps(bc.total, epochs=10, gradient_accumulation_steps=2)
    assert (r.steps_per_epoch, r.total_optimization_steps) == (100, 1000)

    r = total_steps(100)
    assert (r.total_optimization_steps, r.epochs) == (DEFAULT_MAX_TRAIN_STEPS, 16)
    assert not r.epochs_override_steps


def test_bucket_rounding_101_50_49() -> None:
    spec = DatasetSpec(
        [_subset((512, 512), 101, 1), _subset((640, 384), 50, 1), _subset((384, 640), 49, 1)],
        batch_size=2,
        resolution=(512, 512),
        enable_bucket=True,
    )
    bc = batches_per_epoch([spec])
    assert bc.buckets == ((384, 640, 49), (512, 512, 101), (640, 384, 50))
    assert [b.batches for b in bc.datasets[0].buckets] == [25, 51, 25]
    assert bc.total == 101
    assert tutorial_formula(200, 1, 1, 2) == 100.0


def test_cpu_fixture_run1() -> None:
    spec = DatasetSpec(
        [SubsetImages([(128, 128), (128, 128), (192, 80), (192, 80)], 2)],
        batch_size=1,
        resolution=(128, 128),
        enable_bucket=True,
        min_bucket_reso=64,
        max_bucket_reso=256,
        bucket_reso_steps=64,
    )
    bc = batches_per_epoch([spec])
    assert bc.buckets == ((128, 128, 4), (192, 64, 4))
    assert bc.total == 8
    r = total_steps(bc.total, epochs=2)
    assert (r.total_optimization_steps, r.epochs, r.steps_per_epoch) == (16, 2, 8)


def _sd_reg_loop(reg: list[int], t: int) -> list[int]:
    """The while loop at the end of DreamBoothDataset.__init__, verbatim; 0 = unregistered."""
    repeats = [0] * len(reg)
    n = 0
    first_loop = True
    while n < t:
        for i, r in enumerate(reg):
            if first_loop:
                repeats[i] = r
                n += r
            else:
                repeats[i] += 1
                n += 1
            if n >= t:
                break
        first_loop = False
    return repeats


def test_reg_balancing_against_sd_loop() -> None:
    rng = random.Random(3)
    got: list[int] = []
    for _ in range(500):
        reg = [rng.randint(1, 5) for _ in range(rng.randint(1, 12))]
        t = rng.randint(0, 80)
        got.clear()
        sizes = [(i + 1, 1) for i in range(len(reg))]  # size encodes the index
        samples, unused = _register_reg_images(
            [([s], r) for s, r in zip(sizes, reg, strict=True)],
            t,
            lambda _size, r: got.append(r),
        )
        expected = [r for r in _sd_reg_loop(reg, t) if r]
        assert got == expected, (reg, t)
        assert samples == sum(expected)
        assert unused == len(reg) - len(expected)


def test_reg_more_than_train_and_no_train() -> None:
    spec = DatasetSpec(
        [_subset((512, 512), 10, 2), SubsetImages([(512, 512)] * 5 + [(768, 512)] * 50, 1, True)],
        batch_size=1,
        enable_bucket=True,
    )
    d = batches_per_epoch([spec]).datasets[0]
    assert (d.train_samples, d.reg_images, d.reg_samples, d.reg_images_unused) == (20, 55, 20, 35)
    assert d.buckets[0].count == 25  # 20 train + 5 reg at 512x512, then 15 at 640x384
    only_reg = DatasetSpec([_subset((512, 512), 10, 1, is_reg=True)])
    bc = batches_per_epoch([only_reg])
    assert (bc.total, bc.reg_samples) == (0, 0)
    with pytest.raises(ValueError, match="No data found"):
        total_steps(bc.total)


def test_skipped_subsets() -> None:
    spec = DatasetSpec(
        [
            SubsetImages([(512, 512)] * 3, 0),  # repeats < 1
            SubsetImages([(512, 512)] * 4, 1, image_dir="a"),
            SubsetImages([(512, 512)] * 9, 1, image_dir="a"),  # duplicate dir
            SubsetImages([], 5, image_dir="b"),
        ]
    )
    assert batches_per_epoch([spec]).total == 4


def test_validation_split_with_seed() -> None:
    sizes = [(512, 512)] * 6 + [(768, 512)] * 6
    spec = DatasetSpec(
        [SubsetImages(sizes, 1), _subset((512, 512), 30, 1, is_reg=True)],
        enable_bucket=True,
        validation_split=0.25,
        validation_seed=42,
    )
    d = batches_per_epoch([spec]).datasets[0]
    shuffled = list(sizes)
    random.seed(42)
    random.shuffle(shuffled)
    kept = shuffled[: math.ceil(12 * (1 - 0.25))]
    assert d.validation_images == 3
    assert d.train_samples == 9
    assert d.reg_samples == 9  # reg subsets are never split
    assert d.exact
    n_wide = kept.count((768, 512))
    assert {(b.width, b.height): b.count for b in d.buckets}[(640, 384)] == n_wide


def test_validation_split_without_seed() -> None:
    same = DatasetSpec([_subset((512, 512), 10, 1)], validation_split=0.2, enable_bucket=True)
    assert batches_per_epoch([same]).exact
    mixed = DatasetSpec(
        [SubsetImages([(512, 512), (768, 512)] * 5, 1)], validation_split=0.2, enable_bucket=True
    )
    assert not batches_per_epoch([mixed]).exact
    empty = DatasetSpec([SubsetImages([], 1)], validation_split=0.2)
    with pytest.raises(ValueError, match="empty subset"):
        batches_per_epoch([empty])
    missing = DatasetSpec([SubsetImages([], 1, exists=False)], validation_split=0.2)
    assert batches_per_epoch([missing]).total == 0


def test_multiple_datasets_sum() -> None:
    a = DatasetSpec([_subset((512, 512), 7, 1)], batch_size=2)
    b = DatasetSpec([_subset((512, 512), 7, 1)], batch_size=3, resolution=(768, 768))
    bc = batches_per_epoch([a, b])
    assert [d.batches for d in bc.datasets] == [4, 3]
    assert bc.total == 7


def test_total_steps_partial_and_processes() -> None:
    r = total_steps(100, max_train_steps=250)
    assert (r.epochs, r.last_epoch_partial, r.last_epoch_steps) == (3, True, 50)
    r = total_steps(5, epochs=2, num_processes=2)
    assert (r.batches_per_epoch, r.dataset_batches, r.total_optimization_steps) == (3, 5, 6)
    assert r.lr_scheduler_steps == 12
    r = total_steps(7, epochs=3, num_processes=2, gradient_accumulation_steps=2)
    assert (r.batches_per_epoch, r.steps_per_epoch, r.total_optimization_steps) == (4, 2, 6)
    assert prepared_dataloader_length(8, 4) == 2
    assert prepared_dataloader_length(9, 4) == 3
    r = total_steps(10, epochs=0)
    assert (r.epochs, r.total_optimization_steps, r.last_epoch_partial) == (0, 0, False)
    with pytest.raises(ValueError, match="must be >= 1"):
        total_steps(10, gradient_accumulation_steps=0)


def test_tutorial_formula() -> None:
    assert tutorial_formula(20, 10, 10, 2) == 1000.0
    assert tutorial_formula(15, 10, 3, 4) == 112.5


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
out = {"buckets": [], "datasets": []}
for job in req.get("buckets", []):
    no_up, res, enable = job["no_upscale"], tuple(job["res"]), job["enable"]
    lo, hi, step = job["lo"], job["hi"], job["step"]
    if enable:
        adjust = train_util.BaseDataset.adjust_min_max_bucket_reso_by_steps
        try:
            lo, hi = adjust(None, res, lo, hi, step)
        except AssertionError:
            out["buckets"].append("AssertionError")
            continue
        bm = train_util.BucketManager(no_up, res, lo, hi, step)
        if not no_up:
            bm.make_buckets()
    else:
        bm = train_util.BucketManager(False, res, None, None, None)
        bm.set_predefined_resos([res])
    got = []
    for w, h in job["sizes"]:
        try:
            reso, resized, err = bm.select_bucket(w, h)
            got.append([list(reso), list(resized), float(err)])
        except Exception as e:
            got.append(type(e).__name__)
    out["buckets"].append(got)
if req.get("datasets"):
    import train_network
    parser = train_network.setup_parser()
    for argv in req["datasets"]:
        args = parser.parse_args(argv)
        train_util.prepare_dataset_args(args, True)
        bg = config_util.BlueprintGenerator(config_util.ConfigSanitizer(True, True, False, True))
        if args.dataset_config:
            uc = config_util.load_user_config(args.dataset_config)
        else:
            by_subdirs = config_util.generate_dreambooth_subsets_config_by_subdirs
            uc = {"datasets": [{"subsets": by_subdirs(args.train_data_dir, args.reg_data_dir)}]}
        bp = bg.generate(uc, args)
        g, _ = config_util.generate_dataset_group_by_blueprint(bp.dataset_group)
        out["datasets"].append({
            "L": len(g), "T": g.num_train_images, "R": g.num_reg_images,
            "per": [{"len": len(d), "buckets": [[r[0], r[1], len(b)] for r, b in
                     zip(d.bucket_manager.resos, d.bucket_manager.buckets) if len(b)]}
                    for d in g.datasets]})
print("ORACLE" + json.dumps(out))
"""


def _oracle(req: dict[str, object]) -> dict[str, list[object]]:
    proc = subprocess.run(
        [str(_sd_python()), "-c", _ORACLE],
        input=json.dumps(req),
        capture_output=True,
        text=True,
        cwd=SD_SCRIPTS,
        timeout=500,
        check=False,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("ORACLE")), None)
    assert line is not None, proc.stderr[-3000:]
    result: dict[str, list[object]] = json.loads(line[len("ORACLE") :])
    return result


BUCKET_CONFIGS = [
    # (resolution, enable, min, max, steps, no_upscale)
    ((512, 512), True, 256, 1024, 64, False),
    ((512, 512), True, 250, 1000, 64, False),
    ((768, 512), True, 320, 1280, 32, False),
    ((1024, 1024), True, 256, 2048, 64, False),
    ((128, 128), True, 64, 256, 64, False),
    ((512, 512), True, 256, 1024, 64, True),
    ((1024, 768), True, 256, 2048, 32, True),
    ((512, 768), False, 256, 1024, 64, False),
    ((512, 512), True, 576, 1024, 64, False),  # invalid: min > resolution
]


@pytest.mark.sdscripts
def test_buckets_match_sd_scripts() -> None:
    rng = random.Random(99)
    sizes = [(rng.randint(1, 8000), rng.randint(1, 8000)) for _ in range(1500)]
    sizes += [(rng.randint(1, 300), rng.randint(1, 300)) for _ in range(300)]
    sizes += [(w, h) for w, h in BUCKETS_512] + [(1, 5000), (5000, 1), (513, 511)]
    jobs = [
        {"res": res, "enable": en, "lo": lo, "hi": hi, "step": st, "no_upscale": nu, "sizes": sizes}
        for res, en, lo, hi, st, nu in BUCKET_CONFIGS
    ]
    theirs = _oracle({"buckets": jobs})["buckets"]
    for (res, en, lo, hi, st, nu), got in zip(BUCKET_CONFIGS, theirs, strict=True):
        try:
            sel = BucketSelector.for_dataset(
                res,
                enable_bucket=en,
                min_bucket_reso=lo,
                max_bucket_reso=hi,
                bucket_reso_steps=st,
                bucket_no_upscale=nu,
            )
        except BucketError:
            assert got == "AssertionError"
            continue
        assert isinstance(got, list)
        for (w, h), g in zip(sizes, got, strict=True):
            if isinstance(g, str):
                with pytest.raises(BucketError):
                    sel.select_bucket(w, h)
                continue
            try:
                c = sel.select_bucket(w, h)
            except BucketError:
                # sd-scripts survives selection but gets an empty bucket dimension
                assert 0 in g[0], (res, nu, w, h, g)
                continue
            assert [list(c.reso), list(c.resized_size), c.ar_error] == g, (res, nu, w, h)


def _png(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))


def _make_folders(root: Path, spec: dict[str, tuple[int, list[tuple[int, int]]]]) -> None:
    for name, (_, sizes) in spec.items():
        d = root / name
        d.mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            (d / f"img{i:04d}.png").write_bytes(_png(w, h))


def _ours_from_dirs(
    train: Path, reg: Path | None, **kw: object
) -> tuple[int, int, int, list[list[int]]]:
    subsets: list[SubsetImages] = []
    for parent, is_reg in ((train, False), (reg, True)):
        if parent is None:
            continue
        for f in sorted(list_repeat_folders(parent), key=lambda f: f.iterdir_index):
            if not f.used or f.repeats is None:
                continue
            scan = scan_folder(f.path, ".caption")
            sizes = [e.size for e in scan.images if e.size is not None]
            subsets.append(SubsetImages(sizes, f.repeats, is_reg, image_dir=str(f.path)))
    spec = DatasetSpec(subsets, **kw)  # type: ignore[arg-type]
    bc = batches_per_epoch([spec])
    return bc.total, bc.train_samples, bc.reg_images, [list(b) for b in bc.buckets]


@pytest.mark.sdscripts
def test_datasets_match_sd_scripts(tmp_path: Path) -> None:
    rng = random.Random(5)

    def rand_sizes(n: int) -> list[tuple[int, int]]:
        return [(rng.randint(100, 3000), rng.randint(100, 3000)) for _ in range(n)]

    cases = []
    # folder convention, buckets, reg < train and reg > train, several reg folders
    for i, (n_train, n_reg) in enumerate([(13, 5), (6, 90), (25, 0), (9, 31)]):
        root = tmp_path / f"c{i}"
        train_spec = {"10_sks": (10, rand_sizes(n_train)), "3_x y": (3, rand_sizes(4)),
                      "abc": (0, rand_sizes(2)), "0_zero": (0, rand_sizes(2))}  # fmt: skip
        reg_spec = {"1_dog": (1, rand_sizes(n_reg)), "2_cat": (2, rand_sizes(n_reg // 2))}
        _make_folders(root / "train", train_spec)
        if n_reg:
            _make_folders(root / "reg", reg_spec)
        variants = [
            (2, ["--enable_bucket"]),
            (3, []),
            (4, ["--enable_bucket", "--bucket_no_upscale"]),
            (1, ["--enable_bucket", "--min_bucket_reso", "250", "--max_bucket_reso", "1000"]),
        ]
        for bs, extra in variants:
            argv = ["--train_data_dir", str(root / "train"), "--resolution", "512",
                    "--train_batch_size", str(bs), *extra]  # fmt: skip
            if n_reg:
                argv += ["--reg_data_dir", str(root / "reg")]
            kw = {
                "batch_size": bs,
                "resolution": (512, 512),
                "enable_bucket": "--enable_bucket" in extra,
                "bucket_no_upscale": "--bucket_no_upscale" in extra,
                "min_bucket_reso": int(extra[2]) if "--min_bucket_reso" in extra else 256,
                "max_bucket_reso": int(extra[4]) if "--max_bucket_reso" in extra else 1024,
            }
            cases.append((argv, root / "train", (root / "reg") if n_reg else None, kw))

    theirs = _oracle({"datasets": [c[0] for c in cases]})["datasets"]
    for (argv, train, reg, kw), t in zip(cases, theirs, strict=True):
        assert isinstance(t, dict)
        total, t_samples, r_images, buckets = _ours_from_dirs(train, reg, **kw)
        assert (total, t_samples, r_images) == (t["L"], t["T"], t["R"]), argv
        assert buckets == t["per"][0]["buckets"], argv


@pytest.mark.sdscripts
def test_dataset_config_with_validation_split_matches_sd_scripts(tmp_path: Path) -> None:
    rng = random.Random(11)
    dirs = {}
    for name, n in (("a", 23), ("b", 9), ("r", 40)):
        d = tmp_path / name
        d.mkdir()
        sizes = [(rng.choice([512, 768, 1024, 640]), rng.choice([512, 768, 384])) for _ in range(n)]
        for i, (w, h) in enumerate(sizes):
            (d / f"{i:03d}.png").write_bytes(_png(w, h))
        dirs[name] = (d, sizes)
    config = tmp_path / "ds.toml"
    config.write_text(
        f"""
[[datasets]]
resolution = 512
batch_size = 3
enable_bucket = true
validation_split = 0.3
validation_seed = 1234
  [[datasets.subsets]]
  image_dir = {json.dumps(str(dirs["a"][0]))}
  num_repeats = 4
  [[datasets.subsets]]
  image_dir = {json.dumps(str(dirs["r"][0]))}
  is_reg = true
  num_repeats = 1
[[datasets]]
resolution = [768, 512]
batch_size = 2
enable_bucket = true
min_bucket_reso = 320
max_bucket_reso = 1280
bucket_reso_steps = 32
  [[datasets.subsets]]
  image_dir = {json.dumps(str(dirs["b"][0]))}
  num_repeats = 7
""",
        encoding="utf-8",
    )
    t = _oracle({"datasets": [["--dataset_config", str(config)]]})["datasets"][0]
    assert isinstance(t, dict)
    specs = [
        DatasetSpec(
            [SubsetImages(dirs["a"][1], 4), SubsetImages(dirs["r"][1], 1, is_reg=True)],
            batch_size=3,
            resolution=(512, 512),
            enable_bucket=True,
            validation_split=0.3,
            validation_seed=1234,
        ),
        DatasetSpec(
            [SubsetImages(dirs["b"][1], 7)],
            batch_size=2,
            resolution=(768, 512),
            enable_bucket=True,
            min_bucket_reso=320,
            max_bucket_reso=1280,
            bucket_reso_steps=32,
        ),
    ]
    bc = batches_per_epoch(specs)
    assert (bc.total, bc.train_samples, bc.reg_images) == (t["L"], t["T"], t["R"])
    for ours, theirs in zip(bc.datasets, t["per"], strict=True):
        assert ours.batches == theirs["len"]
        assert [[b.width, b.height, b.count] for b in ours.buckets] == theirs["buckets"]
