"""Golden mapping reports: what `import --json` says about every key of each example source.

Each source is imported from a temporary copy laid out as its tool expects; the report (with
that folder written as <ROOT>) is compared with golden/<name>.json. When a change to the
mapping is intended, refresh them with
`pytest tests/workflows/importers/test_import_reports.py --update-golden` and review the diff.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kohya_plan.workflows.importers import import_text

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parents[1] / "fixtures"
GOLDEN = HERE / "golden"

KOHYA_SS = [
    "sd15 - EDG_LoraOptiSettings.json",
    "loha-sd15.json",
    "locon-AdamW8bit.json",
    "locon-AdamW8bit-toml.json",
    "SDXL-Standard-AdamW8bit.json",
    "flux1D - adamw8bit fp8.json",
    "dataset-multires.toml",
]
OTHERS = [
    "sd-trainer-sdxl-lora.toml",
    "sd-trainer-sd15-legacy.toml",
    "sd-trainer-preset.toml",
    "lets-locon.toml",
    "command-powershell.txt",
    "command-posix.sh",
]


def _source(root: Path, name: str) -> Path:
    if name in KOHYA_SS:
        config = root / "test" / "config"
        shutil.copytree(FIXTURES / "kohya_ss-configs", config)
        (root / "test" / "img" / "10_darius kawasaki person").mkdir(parents=True)
        return config / name
    shutil.copytree(FIXTURES / "importers", root)
    (root / "images" / "20_style").mkdir(parents=True)
    return root / name


@pytest.mark.parametrize("name", KOHYA_SS + OTHERS)
def test_mapping_report_matches_golden(tmp_path: Path, name: str, update_golden: bool) -> None:
    root = tmp_path / "root"
    source = _source(root, name)
    result = import_text(source.read_text("utf-8"), name=source.name, base_dir=source.parent)
    text = json.dumps(result.to_json(), indent=2, ensure_ascii=False, default=str) + "\n"
    text = text.replace(str(root), "<ROOT>")
    golden = GOLDEN / (Path(name).stem.replace(" ", "_") + ".json")
    if update_golden:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    else:
        assert golden.exists(), f"{golden} missing: run pytest --update-golden"
        assert text == golden.read_text(encoding="utf-8"), f"{name}: the mapping report differs"


def test_golden_reports_account_for_every_source_key() -> None:
    for name in ("locon-AdamW8bit.json", "flux1D - adamw8bit fp8.json"):
        source = json.loads((FIXTURES / "kohya_ss-configs" / name).read_text("utf-8"))
        report = json.loads((GOLDEN / (Path(name).stem.replace(" ", "_") + ".json")).read_text())
        assert set(source) <= {r["source"] for r in report["records"]}
