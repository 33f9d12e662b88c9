"""Sources that cannot be imported: exit 2, the key named, a fix, no traceback, nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "kohya_ss-configs"
LOCON = json.loads((FIXTURES / "locon-AdamW8bit.json").read_text("utf-8"))


def _json(**changes: Any) -> str:
    return json.dumps({**LOCON, **changes})


CASES = [
    # (id, file name, content, what the message must name)
    ("not-json", "config.json", "{'LoRA_type': 'Standard'}", "not JSON"),
    ("json-array", "config.json", json.dumps([LOCON]), "a JSON array"),
    ("unknown-lora-type", "config.json", _json(LoRA_type="LoRA-XL"), "LoRA_type"),
    (
        "unknown-additional-option",
        "config.json",
        _json(additional_parameters="--min_snr_gamma 5 --noise_ofset 0.1"),
        "additional_parameters: --noise_ofset",
    ),
    (
        "additional-bad-value",
        "config.json",
        _json(additional_parameters="--max_token_length 100"),
        "additional_parameters: --max_token_length",
    ),
    (
        "bad-optimizer-args",
        "config.json",
        _json(optimizer_args="weight_decay = 0.1"),
        "optimizer_args",
    ),
    (
        "all-lrs-zero",
        "config.json",
        _json(learning_rate=0, unet_lr=0, text_encoder_lr=0),
        "learning_rate",
    ),
    ("other-family", "config.json", _json(sd3_checkbox=True), "sd3_checkbox"),
    ("loha-needs-sdxl", "config.json", _json(LoRA_type="Kohya LoHa"), "LoRA_type"),
    (
        "textual-inversion",
        "ti.json",
        json.dumps({"token_string": "sks", "init_word": "woman"}),
        "token_string",
    ),
    ("not-lora", "x.json", json.dumps({"seed": 1}), "LoRA_type"),
    ("bad-toml", "config.toml", "learning_rate = = 1", "not valid TOML"),
    (
        "sd-trainer-dreambooth",
        "st.toml",
        'model_train_type = "sd-dreambooth"\n',
        "model_train_type",
    ),
    ("lets-ti", "lets.toml", '[train_mode]\ntrain_mode = "textual_inversion"\n', "train_mode"),
    (
        "finetune-subset",
        "dataset.toml",
        '[[datasets]]\n[[datasets.subsets]]\nmetadata_file = "meta.json"\nimage_dir = "x"\n',
        "metadata_file",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_source_exits_2_naming_the_key(
    tmp_path: Path, run_cli: Any, name: str, content: str, named: str
) -> None:
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    target = tmp_path / "plan.toml"
    result = run_cli("import", source, "-o", target)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert "Traceback" not in result.output
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_bad_source_json_names_the_key(tmp_path: Path, run_cli: Any) -> None:
    source = tmp_path / "c.json"
    source.write_text(_json(LoRA_type="LoRA-XL"), encoding="utf-8")
    result = run_cli("import", source, "-o", tmp_path / "p.toml", "--json")
    assert result.exit_code == 2
    data = json.loads(result.output)
    assert data["ok"] is False
    assert data["errors"][0]["field"] == "LoRA_type"


def test_existing_plan_is_never_overwritten(tmp_path: Path, run_cli: Any) -> None:
    target = tmp_path / "plan.toml"
    target.write_text("# mine\n", encoding="utf-8")
    result = run_cli("import", FIXTURES / "loha-sd15.json", "-o", target)
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert target.read_text("utf-8") == "# mine\n"


def test_default_target_is_beside_the_source(tmp_path: Path, run_cli: Any) -> None:
    source = tmp_path / "loha-sd15.json"
    source.write_bytes((FIXTURES / "loha-sd15.json").read_bytes())
    result = run_cli("import", source)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "loha-sd15.plan.toml").is_file()
    again = run_cli("import", source)
    assert again.exit_code == 2


def test_missing_dataset_config_names_the_key(tmp_path: Path, run_cli: Any) -> None:
    source = tmp_path / "c.json"
    source.write_text(_json(dataset_config="nowhere/dataset.toml"), encoding="utf-8")
    result = run_cli("import", source, "-o", tmp_path / "p.toml")
    assert result.exit_code == 2
    assert "dataset_config" in result.output
    assert "nowhere/dataset.toml" in result.output
