"""The committed snapshot of sd-scripts' command-line options (kohya_plan/data/...json).

The first tests always run and only read the JSON. The last one (marker `sdscripts`)
regenerates the snapshot with the real sd-scripts and compares; it is skipped where the
sd-scripts venv (scripts/setup-sd-scripts) or the vendor/sd-scripts submodule is missing.
Regenerate after bumping the submodule with:

    .venv-sd/bin/python scripts/snapshot_sd_scripts_options.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

import pytest
import sdlab
from helpers import REPO

if TYPE_CHECKING:
    from pathlib import Path

REPO_ROOT = REPO
SNAPSHOT = REPO_ROOT / "kohya_plan" / "data" / "sd_scripts_options.json"
SNAPSHOT_SCRIPT = REPO_ROOT / "scripts" / "snapshot_sd_scripts_options.py"
VENDOR_SD_SCRIPTS = REPO_ROOT / "vendor" / "sd-scripts"
# the commit vendor/sd-scripts is pinned to (the gitlink); used when git cannot tell
PINNED_COMMIT = "48d368fa557731ad0488c07304dfeba8c07910eb"

KNOWN_TYPES = {"str", "int", "float", "bool", "path", "int_or_float"}
KNOWN_ACTIONS = {"store", "store_true"}
FIELDS = {"flags", "type", "nargs", "default", "choices", "action"}


def gitlink_commit() -> str:
    """The commit recorded for vendor/sd-scripts in the index (no checkout needed)."""
    git = shutil.which("git")
    if git is None:
        return PINNED_COMMIT
    res = subprocess.run(
        [git, "ls-files", "--stage", "--", "vendor/sd-scripts"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    fields = res.stdout.split()
    if res.returncode != 0 or len(fields) < 2 or fields[0] != "160000":
        return PINNED_COMMIT  # not a git work tree (e.g. an sdist): trust the constant
    return fields[1]


@pytest.fixture(scope="module")
def snapshot() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def train_network(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = snapshot["scripts"]["train_network.py"]
    return options


@pytest.mark.integration  # starts a Python (or git) subprocess
def test_commit_matches_submodule_pin(snapshot: dict[str, Any]) -> None:
    assert snapshot["sd_scripts_commit"] == gitlink_commit()


def test_scripts_present(snapshot: dict[str, Any]) -> None:
    assert set(snapshot) == {"sd_scripts_commit", "scripts"}
    assert set(snapshot["scripts"]) == {"train_network.py", "sdxl_train_network.py"}
    # train_network.py has 193 options at the pinned commit; sdxl adds a few SDXL-only ones
    assert len(snapshot["scripts"]["train_network.py"]) > 150
    sd1 = set(snapshot["scripts"]["train_network.py"])
    sdxl = set(snapshot["scripts"]["sdxl_train_network.py"])
    assert sd1 <= sdxl
    assert "cache_text_encoder_outputs" in sdxl - sd1


def test_every_entry_well_formed(snapshot: dict[str, Any]) -> None:
    for script, options in snapshot["scripts"].items():
        for dest, spec in options.items():
            where = f"{script}: {dest}"
            assert set(spec) == FIELDS, where
            assert spec["flags"], where
            assert all(f.startswith("-") for f in spec["flags"]), where
            assert spec["type"] in KNOWN_TYPES, where
            assert spec["action"] in KNOWN_ACTIONS, where
            assert "help" not in spec, where
            if spec["action"] == "store_true":
                assert spec["type"] == "bool", where
                assert spec["default"] is False, where
            assert spec["choices"] is None or isinstance(spec["choices"], list), where


def test_file_is_canonical_json() -> None:
    text = SNAPSHOT.read_text(encoding="utf-8")
    data = json.loads(text)
    assert text == json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize(
    ("dest", "type_", "nargs"),
    [
        ("network_dim", "int", None),
        ("network_alpha", "float", None),
        ("learning_rate", "float", None),
        ("unet_lr", "float", None),
        ("text_encoder_lr", "float", "*"),
        ("resolution", "str", None),
        ("network_args", "str", "*"),
        ("optimizer_args", "str", "*"),
        ("network_module", "str", None),
        ("dataset_config", "path", None),
        ("lr_warmup_steps", "int_or_float", None),
        ("max_train_epochs", "int", None),
        ("train_batch_size", "int", None),
        ("cache_latents", "bool", 0),
        ("enable_bucket", "bool", 0),
        ("network_train_unet_only", "bool", 0),
    ],
)
def test_key_option_types(
    train_network: dict[str, dict[str, Any]], dest: str, type_: str, nargs: object
) -> None:
    spec = train_network[dest]
    assert spec["flags"] == [f"--{dest}"]
    assert spec["type"] == type_
    assert spec["nargs"] == nargs


def test_key_option_defaults_and_choices(train_network: dict[str, dict[str, Any]]) -> None:
    assert train_network["cache_latents"]["action"] == "store_true"
    assert train_network["caption_extension"]["default"] == ".caption"
    assert train_network["learning_rate"]["default"] == 2e-6
    assert train_network["train_batch_size"]["default"] == 1
    assert train_network["network_alpha"]["default"] == 1
    assert train_network["save_model_as"]["default"] == "safetensors"
    assert train_network["save_model_as"]["choices"] == [None, "ckpt", "pt", "safetensors"]
    assert train_network["max_token_length"]["choices"] == [None, 150, 225]
    assert "bf16" in train_network["mixed_precision"]["choices"]


@pytest.mark.sdscripts
def test_snapshot_matches_real_sd_scripts(tmp_path: Path) -> None:
    if not (VENDOR_SD_SCRIPTS / "train_network.py").is_file():
        pytest.skip(f"vendor/sd-scripts is not checked out: {sdlab.SUBMODULE_HINT}")
    python = sdlab.sd_python()
    if python is None:
        pytest.skip(f"no sd-scripts Python: {sdlab.skip_reason()}")
    out = tmp_path / "sd_scripts_options.json"
    res = subprocess.run(
        [
            str(python),
            str(SNAPSHOT_SCRIPT),
            "--sd-scripts",
            str(VENDOR_SD_SCRIPTS),
            "--output",
            str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    regenerated = out.read_text(encoding="utf-8")
    committed = SNAPSHOT.read_text(encoding="utf-8")
    if regenerated != committed:
        new, old = json.loads(regenerated), json.loads(committed)
        diffs = [f"sd_scripts_commit: {old['sd_scripts_commit']} -> {new['sd_scripts_commit']}"]
        for script in sorted(set(new["scripts"]) | set(old["scripts"])):
            a, b = old["scripts"].get(script, {}), new["scripts"].get(script, {})
            diffs += [f"{script}: {d} changed" for d in sorted(a.keys() & b.keys()) if a[d] != b[d]]
            diffs += [f"{script}: {d} removed" for d in sorted(a.keys() - b.keys())]
            diffs += [f"{script}: {d} added" for d in sorted(b.keys() - a.keys())]
        pytest.fail(
            "committed snapshot is stale; regenerate it with "
            "`.venv-sd/bin/python scripts/snapshot_sd_scripts_options.py`:\n"
            + "\n".join(diffs[:50])
        )
