"""What sd-scripts really does with the data-set traps `check` reports, measured with its own
code (``load_image``, ``get_image_size``, the DreamBooth dataset built from the dataset.toml
kohya-plan renders, the CLIP tokenizer) in the interpreter of ``.venv-sd``.

Each test states the truth and then that `check`'s finding says it: a wrong message fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest
import sdlab
from helpers import base_plan, make_images, write_plan
from PIL import Image

from kohya_plan.planning import check_plan, render_run

pytestmark = pytest.mark.sdscripts

SD_SCRIPTS = sdlab.sd_scripts_dir() or Path(__file__).resolve().parents[2] / "vendor" / "sd-scripts"

_ORACLE = r"""
import json, os, sys, warnings
sys.path.insert(0, os.getcwd())
import logging
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
logging.getLogger().addHandler(Keep())
logging.getLogger().setLevel(logging.WARNING)
from library import train_util, config_util
req = json.load(sys.stdin)
out = {"load": {}, "size": {}, "dataset": None, "tokens": {}}
for p in req.get("load", []):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            train_util.load_image(p)
            verdict = None
        except BaseException as e:
            verdict = type(e).__name__ + ": " + str(e)
    out["load"][p] = [verdict, sorted({w.category.__name__ for w in caught})]
    try:
        out["size"][p] = list(train_util.BaseDataset.get_image_size(None, p))
    except BaseException as e:
        out["size"][p] = type(e).__name__ + ": " + str(e)
if req.get("config"):
    import train_network
    args = train_network.setup_parser().parse_args(["--dataset_config", req["config"]])
    train_util.prepare_dataset_args(args, True)
    bg = config_util.BlueprintGenerator(config_util.ConfigSanitizer(True, True, False, True))
    bp = bg.generate(config_util.load_user_config(args.dataset_config), args)
    group, _ = config_util.generate_dataset_group_by_blueprint(bp.dataset_group)
    ds = group.datasets[0]
    out["dataset"] = {
        "train": ds.num_train_images,
        "reg": ds.num_reg_images,
        "subsets": [[s.image_dir, s.img_count, s.is_reg] for s in ds.subsets],
        "captions": {k: v.caption for k, v in ds.image_data.items()},
        "tags": ds.tag_frequency,
        "log": records,
    }
if req.get("tokenizer"):
    from transformers import CLIPTokenizer
    tok = CLIPTokenizer.from_pretrained(req["tokenizer"])
    out["tokens"] = {t: tok(t).input_ids for t in req["texts"]}
print("ORACLE" + json.dumps(out))
"""


def _oracle(**request: Any) -> dict[str, Any]:
    proc = subprocess.run(
        [str(sdlab.require_sd_python()), "-c", _ORACLE],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=SD_SCRIPTS,
        timeout=600,
        check=False,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("ORACLE")), None)
    assert line is not None, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(line[len("ORACLE") :])
    return result


def _report(root: Path, **sections: Any):
    sections.setdefault("rules", {"allow": ["image-count", "steps-range"]})
    return check_plan(write_plan(root, base_plan(**sections)))


def _dataset_toml(report, root: Path) -> Path:
    """The dataset.toml `make` would write for this plan (also when check found errors)."""
    rendered = render_run(report, root / "run")
    path = root / "dataset.toml"
    path.write_text(rendered.files["dataset.toml"], encoding="utf-8")
    return path


def _messages(report, rule: str) -> list[str]:
    return [f.message for f in report.findings if f.id == rule]


def test_pixel_limit_damaged_data_and_link_loops(tmp_path: Path) -> None:
    from kohya_plan.inputs.decode import decode_problem

    folder = tmp_path / "data" / "5_testchar"
    folder.mkdir(parents=True)
    Image.new("1", (9459, 9459)).save(folder / "edge.png")  # 89,472,681: fine
    Image.new("1", (9460, 9460)).save(folder / "warn.png")  # 89,491,600: a warning
    Image.new("1", (13378, 13378)).save(folder / "bomb.png")  # over twice: an error
    picture = Image.effect_noise((128, 96), 50).convert("RGB")
    picture.save(folder / "good.png")
    picture.save(folder / "good.jpg")
    for name in ("good.png", "good.jpg"):
        data = (folder / name).read_bytes()
        (folder / f"cut-{name}").write_bytes(data[: len(data) // 2])
    os.symlink("loop.png", folder / "loop.png")
    paths = sorted(str(p) for p in folder.iterdir())
    truth = _oracle(load=paths)

    assert truth["load"][str(folder / "edge.png")] == [None, []]
    assert truth["load"][str(folder / "warn.png")] == [None, ["DecompressionBombWarning"]]
    assert truth["load"][str(folder / "bomb.png")][0].startswith("DecompressionBombError")
    for name in ("cut-good.png", "cut-good.jpg"):
        assert truth["load"][str(folder / name)][0].startswith("OSError: image file is truncated")
        assert truth["size"][str(folder / name)] == [128, 96]  # the header is fine
    assert "Too many levels of symbolic links" in truth["size"][str(folder / "loop.png")]

    for path in paths:  # the deep check's verdict is load_image's
        if Path(path).name in ("bomb.png", "loop.png"):
            continue  # not decoded: already errors from the header
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as deep_check runs it: a warning is no error
            ours = decode_problem(path)
        assert (ours is None) is (truth["load"][path][0] is None), path

    for image in folder.iterdir():
        (image.with_suffix(".txt") if image.suffix == ".png" else folder / "jpg.txt").write_text(
            "testchar", encoding="utf-8"
        )
    report = check_plan(
        write_plan(tmp_path, base_plan(rules={"allow": ["image-count", "steps-range"]})),
        deep="full",
    )
    (too_large,) = _messages(report, "image-too-large")
    assert "bomb.png" in too_large
    assert "DecompressionBombError" in too_large
    (large,) = _messages(report, "image-large")
    assert "warn.png" in large
    assert "DecompressionBombWarning" in large
    assert "trains it" in large
    (corrupt,) = _messages(report, "image-corrupt")
    assert "cut-good.jpg" in corrupt or "cut-good.png" in corrupt
    assert any("loop.png" in m for m in _messages(report, "unreadable-image"))


def test_blank_and_bom_captions(tmp_path: Path) -> None:
    folder = make_images(tmp_path / "data" / "5_testchar", [(64, 64)] * 4)
    (folder / "img0.txt").write_text("  \t\nsecond line", encoding="utf-8")
    (folder / "img1.txt").write_text("\ufeff", encoding="utf-8")
    (folder / "img2.txt").write_text("\ufeffsks dog, red", encoding="utf-8")
    report = _report(tmp_path)
    lab = sdlab.tokenizer_cache(sdlab.lab_cache_dir()) / sdlab.TOKENIZER_FOLDER
    texts = ["sks dog, red", "\ufeffsks dog, red", "\ufeff", ""]
    truth = _oracle(config=str(_dataset_toml(report, tmp_path)), tokenizer=str(lab), texts=texts)
    captions = {Path(k).name: v for k, v in truth["dataset"]["captions"].items()}
    # whitespace only: an empty caption, not the class token, and no warning about it
    assert captions["img0.png"] == ""
    assert not any("img0" in line for line in truth["dataset"]["log"])
    # the BOM is kept in the caption…
    assert captions["img1.png"] == "\ufeff"
    assert captions["img2.png"] == "\ufeffsks dog, red"
    # …and dropped by the CLIP tokenizer: the text encoder sees the same tokens
    tokens = truth["tokens"]
    assert tokens["\ufeffsks dog, red"] == tokens["sks dog, red"]
    assert tokens["\ufeff"] == tokens[""]
    # only the LoRA's tag counts see it
    assert "\ufeffsks dog" in truth["dataset"]["tags"]["5_testchar"]

    (blank,) = _messages(report, "blank-caption")
    assert "img0.png, img1.png" in blank
    assert "empty caption, without the class-token fallback and without a warning" in blank
    (bom,) = _messages(report, "caption-bom")
    assert "keeps it in the caption" in bom
    assert "tokenizer drops it" in bom
    assert "ss_tag_frequency" in bom


def test_loose_nested_and_orphans_are_not_read(tmp_path: Path) -> None:
    folder = make_images(tmp_path / "data" / "5_testchar", [(64, 64)] * 3)
    make_images(tmp_path / "data", [(64, 64)] * 2, stem="loose")
    make_images(folder / "originals", [(64, 64)] * 4, stem="nested")
    (folder / "orphan.txt").write_text("testchar", encoding="utf-8")
    report = _report(tmp_path)
    truth = _oracle(config=str(_dataset_toml(report, tmp_path)))["dataset"]
    assert truth["subsets"] == [[str(folder), 3, False]]
    assert sorted(Path(k).name for k in truth["captions"]) == ["img0.png", "img1.png", "img2.png"]
    assert truth["train"] == 3 * 5
    (loose,) = _messages(report, "loose-images")
    assert "2 images lie in" in loose
    (nested,) = _messages(report, "nested-folders")
    assert "originals holds 4 images that sd-scripts does not read" in nested
    (orphans,) = _messages(report, "orphan-captions")
    assert "orphan.txt" in orphans


def test_one_folder_twice(tmp_path: Path) -> None:
    folder = make_images(tmp_path / "data" / "5_testchar", [(64, 64)] * 3)
    # the same string twice: sd-scripts keeps the first subset, drops the second with a warning
    same = _report(tmp_path, dataset={"subsets": [{"image_dir": str(folder), "repeats": 2}]})
    truth = _oracle(config=str(_dataset_toml(same, tmp_path)))["dataset"]
    assert truth["subsets"] == [[str(folder), 3, False]]
    assert truth["train"] == 3 * 5
    assert any("ignore duplicated subset" in line for line in truth["log"])
    (message,) = _messages(same, "duplicate-folder")
    assert "keeps the first and ignores the second" in message

    # another spelling of the same folder, as regularization images: read twice
    (tmp_path / "reg").mkdir()
    (tmp_path / "reg" / "1_person").symlink_to(folder, target_is_directory=True)
    linked = _report(tmp_path, dataset={"reg_dir": "reg"})
    truth = _oracle(config=str(_dataset_toml(linked, tmp_path)))["dataset"]
    assert [s[1:] for s in truth["subsets"]] == [[3, False], [3, True]]
    assert truth["reg"] == 3
    (message,) = _messages(linked, "duplicate-folder")
    assert "reads its images as training and as regularization images" in message
