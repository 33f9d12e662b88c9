"""A real training run through `kohya-plan launch` (sd-scripts on the CPU, tiny random model).

Skipped with the reason where sd-scripts or its requirements are missing (as on CI). Builds
(once, cached) a random SD1.5-shaped Diffusers model (full-size U-Net, 2-layer text encoder,
tiny VAE) and the CLIP tokenizer offline, then trains 4 steps at 64 px and checks that the
summary agrees with the TensorBoard scalars and the files on disk. About 1-2 minutes, 8 GB.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import sdlab
from helpers import base_plan, make_images, write_plan

from kohya_plan.trainlog.tensorboard import read_scalars

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sdlab.skip_reason() is not None, reason=str(sdlab.skip_reason())),
]


@pytest.fixture(scope="module")
def lab() -> dict[str, Path]:
    cache = sdlab.lab_cache_dir()
    return {"model": sdlab.tiny_sd15(cache), "tokenizer": sdlab.tokenizer_cache(cache)}


def test_launch_trains_and_summarises(tmp_path: Path, run_cli, lab: dict[str, Path]) -> None:
    make_images(tmp_path / "data" / "1_testchar", [(64, 64), (64, 64)], caption="testchar, red")
    plan = write_plan(
        tmp_path,
        base_plan(
            model={"base": str(lab["model"]), "tokenizer_cache_dir": str(lab["tokenizer"])},
            dataset={"resolution": 64, "min_bucket_reso": 64, "max_bucket_reso": 128},
            network={"dim": 4, "alpha": 2},
            optimizer={"type": "AdamW", "scheduler": "constant"},
            training={
                "epochs": 2,
                "mixed_precision": "no",
                "save_every_n_epochs": 1,
                "max_data_loader_n_workers": 0,
            },
            output={"save_precision": "float"},
            launch={"sd_scripts": str(sdlab.sd_scripts_dir()), "python": str(sdlab.sd_python())},
        ),
    )
    result = run_cli("launch", plan, "--plain")
    print(result.output)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["outcome"] == "succeeded"
    assert (summary["steps_done"], summary["steps_total"]) == (4, 4)
    assert (summary["epochs_done"], summary["epochs_total"]) == (2, 2)
    # The per-epoch loss from the log equals TensorBoard's loss/epoch_average (3 digits shown).
    scalars = read_scalars(run_dir / "logs")
    tb = dict(scalars["loss/epoch_average"])
    log = {int(k): v for k, v in summary["loss"]["per_epoch_log"].items()}
    assert sorted(log) == sorted(tb) == [1, 2]
    for epoch, value in log.items():
        assert math.isclose(value, tb[epoch], rel_tol=6e-3), (epoch, value, tb[epoch])
    assert {int(k): v for k, v in summary["loss"]["per_epoch_tensorboard"].items()} == tb
    last_avr = dict(scalars["loss/average"])
    assert math.isclose(summary["loss"]["last"], last_avr[max(last_avr)], rel_tol=6e-3)
    # Files: epoch 1 numbered by sd-scripts, the final one copied under epoch 2's name (T29).
    out = tmp_path / "out"
    files = {Path(f["path"]).name: f for f in summary["files"]}
    assert set(files) == {"testlora-000001.safetensors", "testlora.safetensors"}
    for name, item in files.items():
        assert item["bytes"] == (out / name).stat().st_size
    assert Path(summary["final_copy"]) == out / "testlora-000002.safetensors"
    copy = out / "testlora-000002.safetensors"
    assert copy.read_bytes() == (out / "testlora.safetensors").read_bytes()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["epochs"] == {
        "1": str(out / "testlora-000001.safetensors"),
        "2": str(out / "testlora-000002.safetensors"),
    }
    # The log is complete and the summary can be rebuilt from it and the events alone.
    assert b"model saved." in (run_dir / "train.log").read_bytes()
    again = run_cli("summary", run_dir, "--json")
    rebuilt = json.loads(again.stdout)
    assert rebuilt == summary
    # Launching into the same output again is refused: sd-scripts would overwrite silently.
    refused = run_cli("launch", plan, "--plain")
    assert refused.exit_code == 2
    assert "--overwrite" in refused.output


def test_lr_find_runs_dadaptadam_and_writes_a_new_plan(
    tmp_path: Path, run_cli, lab: dict[str, Path]
) -> None:
    make_images(tmp_path / "data" / "1_testchar", [(64, 64), (64, 64)], caption="testchar, red")
    plan = write_plan(
        tmp_path,
        base_plan(
            model={"base": str(lab["model"]), "tokenizer_cache_dir": str(lab["tokenizer"])},
            dataset={"resolution": 64, "min_bucket_reso": 64, "max_bucket_reso": 128},
            network={"dim": 4, "alpha": 2},
            training={"mixed_precision": "no", "max_data_loader_n_workers": 0},
            launch={"sd_scripts": str(sdlab.sd_scripts_dir()), "python": str(sdlab.sd_python())},
        ),
    )
    result = run_cli("lr-find", plan, "--steps", "5", "--plain")
    print(result.output)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    found = json.loads((run_dir / "lr-find.json").read_text())
    assert found["searcher"] == "DAdaptAdam"
    # The value reported is TensorBoard's own lr/d*lr/unet (5 steps are too few to settle).
    points = read_scalars(run_dir / "logs")["lr/d*lr/unet"]
    assert len(points) == 5
    assert found["value"] == points[-1][1]
    assert found["settled"] is False
    assert "never settled within 5 steps" in result.output
    new_plan = Path(found["new_plan"])
    assert new_plan.parent == tmp_path
    assert new_plan.name.startswith("plan.lr-")
    assert plan.read_text() != new_plan.read_text()
    checked = run_cli("check", new_plan, "--json")
    doc = json.loads(checked.stdout)
    assert checked.exit_code == 0, checked.output
    from kohya_plan.loading import load_plan

    new = load_plan(new_plan)
    assert new.optimizer.type == "AdamW8bit"
    assert math.isclose(new.optimizer.unet_lr or 0, found["value"], rel_tol=5e-3)
    assert math.isclose(new.optimizer.text_encoder_lr or 0, new.optimizer.unet_lr / 2, rel_tol=5e-3)
    assert doc["ok"] is True
    assert (run_dir / "lr-find.png").read_bytes().startswith(b"\x89PNG")
