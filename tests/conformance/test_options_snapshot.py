"""The committed snapshot of sd-scripts' command-line options (kohya_plan/data/...json).

The first tests always run and only read the JSON. The last ones (marker `sdscripts`)
regenerate the snapshot of every training script (SD1.5, SDXL, Flux) with the real sd-scripts
and compare; they are skipped where the sd-scripts venv (scripts/setup-sd-scripts) or the
vendor/sd-scripts submodule (or $KOHYA_SD_SCRIPTS) is missing.
Regenerate after bumping the submodule with:

    .venv-sd/bin/python scripts/snapshot_sd_scripts_options.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
import sdlab
from helpers import REPO

REPO_ROOT = REPO
SNAPSHOT = REPO_ROOT / "kohya_plan" / "data" / "sd_scripts_options.json"
SNAPSHOT_SCRIPT = REPO_ROOT / "scripts" / "snapshot_sd_scripts_options.py"
# the commit vendor/sd-scripts is pinned to (the gitlink); used when git cannot tell
PINNED_COMMIT = "48d368fa557731ad0488c07304dfeba8c07910eb"

KNOWN_TYPES = {"str", "int", "float", "bool", "path", "int_or_float"}
KNOWN_ACTIONS = {"store", "store_true"}
FIELDS = {"flags", "type", "nargs", "default", "choices", "action"}
# every script the snapshot holds: the entry point of each model family
SCRIPTS = {"train_network.py", "sdxl_train_network.py", "flux_train_network.py"}


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
    assert set(snapshot["scripts"]) == set(SCRIPTS)
    # option counts at the pinned commit: the SDXL and Flux scripts add theirs to the base
    counts = {script: len(options) for script, options in snapshot["scripts"].items()}
    assert counts == {
        "train_network.py": 193,
        "sdxl_train_network.py": 196,
        "flux_train_network.py": 215,
    }


@pytest.mark.parametrize("script", ["sdxl_train_network.py", "flux_train_network.py"])
def test_family_scripts_keep_every_base_option_unchanged(
    snapshot: dict[str, Any], script: str
) -> None:
    base = snapshot["scripts"]["train_network.py"]
    family = snapshot["scripts"][script]
    assert {dest: family.get(dest) for dest in base} == base


def test_family_only_options(snapshot: dict[str, Any]) -> None:
    scripts = snapshot["scripts"]
    base = set(scripts["train_network.py"])
    sdxl_only = set(scripts["sdxl_train_network.py"]) - base
    flux_only = set(scripts["flux_train_network.py"]) - base
    assert sdxl_only == {
        "cache_text_encoder_outputs",
        "cache_text_encoder_outputs_to_disk",
        "disable_mmap_load_safetensors",
    }
    assert sdxl_only < flux_only
    assert {"clip_l", "t5xxl", "ae", "t5xxl_max_token_length", "blocks_to_swap"} < flux_only
    assert len(flux_only) == 22


def test_flux_defaults_the_plan_must_override(snapshot: dict[str, Any]) -> None:
    flux = snapshot["scripts"]["flux_train_network.py"]
    # sd-scripts' defaults are for distilled-guidance inference; training dev wants 1.0 / raw
    assert flux["guidance_scale"]["default"] == 3.5
    assert flux["model_prediction_type"]["default"] == "sigma_scaled"
    assert flux["model_prediction_type"]["choices"] == ["raw", "additive", "sigma_scaled"]
    assert flux["timestep_sampling"]["default"] == "sigma"
    assert "shift" in flux["timestep_sampling"]["choices"]
    assert flux["discrete_flow_shift"]["default"] == 3.0
    assert flux["t5xxl_max_token_length"]["type"] == "int"
    assert flux["t5xxl_max_token_length"]["default"] is None
    assert flux["model_type"]["choices"] == ["flux", "chroma"]
    for dest in ("clip_l", "t5xxl", "ae"):
        assert flux[dest]["type"] == "str"
        assert flux[dest]["default"] is None


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


@pytest.fixture(scope="module")
def regenerated_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The snapshot file made now from the real sd-scripts (skips where it is missing)."""
    sd = sdlab.sd_scripts_dir()
    if sd is None:
        pytest.skip(f"no sd-scripts checkout: {sdlab.SUBMODULE_HINT}")
    python = sdlab.sd_python()
    if python is None:
        pytest.skip(f"no sd-scripts Python: {sdlab.skip_reason()}")
    out = tmp_path_factory.mktemp("snapshot") / "sd_scripts_options.json"
    res = subprocess.run(
        [str(python), str(SNAPSHOT_SCRIPT), "--sd-scripts", str(sd), "--output", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def regenerated(regenerated_text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(regenerated_text)
    return data


REGENERATE = "`.venv-sd/bin/python scripts/snapshot_sd_scripts_options.py`"


@pytest.mark.sdscripts
def test_snapshot_matches_real_sd_scripts(
    regenerated_text: str, regenerated: dict[str, Any], snapshot: dict[str, Any]
) -> None:
    assert regenerated["sd_scripts_commit"] == snapshot["sd_scripts_commit"], (
        "the sd-scripts checkout is not at the snapshot's commit; check out the pinned commit "
        f"or regenerate the snapshot with {REGENERATE}"
    )
    assert set(regenerated["scripts"]) == set(snapshot["scripts"]) == set(SCRIPTS)
    assert regenerated_text == SNAPSHOT.read_text(encoding="utf-8")


@pytest.mark.sdscripts
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_snapshot_of_each_script_matches_real_sd_scripts(
    regenerated: dict[str, Any], snapshot: dict[str, Any], script: str
) -> None:
    new, old = regenerated["scripts"][script], snapshot["scripts"][script]
    diffs = [f"{d} changed" for d in sorted(old.keys() & new.keys()) if old[d] != new[d]]
    diffs += [f"{d} removed" for d in sorted(old.keys() - new.keys())]
    diffs += [f"{d} added" for d in sorted(new.keys() - old.keys())]
    if diffs:
        pytest.fail(
            f"committed snapshot of {script} is stale; regenerate it with {REGENERATE}:\n"
            + "\n".join(diffs[:50])
        )
