"""What `launch --resume` really does with sd-scripts (48d368fa), measured on the tiny model.

One run of 3 epochs × 2 steps saves states every epoch and every 3 steps; then it is resumed
from the step state (step 3, mid-epoch 2) and from the epoch-2 state. What sd-scripts prints
is what README's "Resuming" paragraph and the summary's note say: the epoch is right, the step
count restarts (a step state: counted from the start of its epoch). Heavy: about 4 minutes.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest
import sdlab
from helpers import base_plan, make_images, write_plan

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sdlab.skip_reason() is not None, reason=str(sdlab.skip_reason())),
]


def _steps_in_log(log: bytes) -> list[tuple[int, int]]:
    """(step, total) of every tqdm frame sd-scripts printed."""
    return [(int(a), int(b)) for a, b in re.findall(rb"steps:.*?\| *(\d+)/(\d+) \[", log)]


def test_resume_from_step_and_epoch_states(tmp_path: Path, run_cli) -> None:
    cache = sdlab.lab_cache_dir()
    make_images(tmp_path / "data" / "1_testchar", [(64, 64), (64, 64)], caption="testchar, red")
    plan = write_plan(
        tmp_path,
        base_plan(
            model={
                "base": str(sdlab.tiny_sd15(cache)),
                "tokenizer_cache_dir": str(sdlab.tokenizer_cache(cache)),
            },
            dataset={"resolution": 64, "min_bucket_reso": 64, "max_bucket_reso": 128},
            network={"dim": 4, "alpha": 2},
            optimizer={"type": "AdamW", "scheduler": "constant"},
            training={
                "epochs": 3,
                "mixed_precision": "no",
                "save_every_n_epochs": 1,
                "save_every_n_steps": 3,
                "save_state": True,
                "max_data_loader_n_workers": 0,
                "tensorboard": False,
            },
            output={"save_precision": "float"},
            launch={"sd_scripts": str(sdlab.sd_scripts_dir()), "python": str(sdlab.sd_python())},
        ),
    )
    first = run_cli("launch", plan, "--plain")
    assert first.exit_code == 0, first.output
    out = tmp_path / "out"
    step_state = out / "testlora-step00000003-state"
    epoch_state = out / "testlora-000002-state"
    assert json.loads((step_state / "train_state.json").read_text()) == {
        "current_epoch": 2,
        "current_step": 3,
    }
    assert (step_state / "random_states_0.pkl").is_file()

    # The step-numbered file of the first run would be overwritten: refused without --overwrite.
    refused = run_cli("launch", plan, "--resume-from", step_state, "--plain")
    assert refused.exit_code == 2
    assert "numbers steps from the resume" in refused.output

    by_step = run_cli("launch", plan, "--resume-from", step_state, "--plain", "--overwrite")
    assert by_step.exit_code == 0, by_step.output
    runs = sorted((tmp_path / "runs").iterdir())
    log = (runs[-1] / "train.log").read_bytes()
    print("step-state resume:", _steps_in_log(log)[-1], re.findall(rb"skipping[^\n]*", log))
    summary = json.loads((runs[-1] / "summary.json").read_text())
    # True steps 4, 5, 6 ran; sd-scripts counts them from the start of epoch 2 (2, 3, 4): its
    # bar shows 3 of 5, and true step 5 is saved as step 3, over the first run's step-3 file.
    assert b"skipping epoch 1 because initial_step (multiplied) is 3" in log
    assert _steps_in_log(log)[-1] == (3, 5)
    assert [f["step"] for f in summary["files"] if f["step"] is not None] == [3]
    assert (summary["epochs_done"], summary["epochs_total"]) == (3, 3)
    assert any("step state" in note for note in summary["notes"])

    by_epoch = run_cli("launch", plan, "--resume-from", epoch_state, "--plain", "--overwrite")
    assert by_epoch.exit_code == 0, by_epoch.output
    runs = sorted((tmp_path / "runs").iterdir())
    log = (runs[-1] / "train.log").read_bytes()
    summary = json.loads((runs[-1] / "summary.json").read_text())
    print("epoch-state resume:", _steps_in_log(log)[-1], summary["steps_done"])
    assert b"epoch 3/3" in log
    assert b"epoch 2/3" not in log  # epochs 1 and 2 were not trained again
    assert (summary["epochs_done"], summary["epochs_total"]) == (3, 3)
    assert summary["steps_done"] == 2  # epoch 3's two steps, counted from the resume
    assert _steps_in_log(log)[-1] == (2, 6)
    assert any("start again at 1" in note for note in summary["notes"])
