"""`kohya-plan launch` on one machine of several, with a fake trainer replaying what machine 1 of
a real 2-machine run printed: the machine rank taken from the environment at run time, a clean
end without "model saved." counted as a success, a missing variable said before anything runs."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import TESTS, base_plan, make_images, write_plan

if TYPE_CHECKING:
    from collections.abc import Callable

    from click.testing import Result

pytestmark = pytest.mark.integration

FAKE = Path(__file__).parent / "fake_trainer.py"
MACHINE1 = TESTS / "fixtures" / "logs" / "scale" / "two_machines.machine1.log"


def _project(tmp_path: Path, **launch: object) -> Path:
    make_images(tmp_path / "data" / "2_testchar", [(64, 64)] * 4)
    sd = tmp_path / "sd-scripts"
    sd.mkdir()
    (sd / "train_network.py").write_text("# stand-in; the fake trainer runs instead\n")
    wrapper = tmp_path / "fake-python"
    args = [sys.executable, str(FAKE), "--replay", str(MACHINE1), "--chunk", "700"]
    wrapper.write_text("#!/bin/sh\nexec " + shlex.join(args) + "\n")
    wrapper.chmod(0o755)
    data = base_plan(
        dataset={"resolution": 64, "min_bucket_reso": 64, "max_bucket_reso": 128},
        launch={"sd_scripts": str(sd), "python": str(wrapper), **launch},
    )
    return write_plan(tmp_path, data)


def test_machine_1_takes_its_rank_from_the_environment_and_succeeds(
    tmp_path: Path, run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _project(
        tmp_path,
        num_processes=2,
        num_machines=2,
        machine_rank="$NODE_RANK",
        main_process_ip="127.0.0.1",
    )
    monkeypatch.delenv("NODE_RANK", raising=False)
    refused = run_cli("launch", plan, "--plain")
    assert refused.exit_code == 2, refused.output
    assert "reads NODE_RANK from the environment, and it is not set" in refused.output
    for run in (tmp_path / "runs").iterdir():  # the folder is made, nothing was started
        assert not (run / "train.log").exists()

    monkeypatch.setenv("NODE_RANK", "1")
    result = run_cli("launch", plan, "--plain")
    assert result.exit_code == 0, result.output
    assert "Run succeeded" in result.output
    assert "this is machine 1 of 2" in result.output
    (run_dir,) = [r for r in (tmp_path / "runs").iterdir() if (r / "train.log").exists()]
    launched = json.loads((run_dir / "exit.json").read_text())
    assert launched["machine_rank"] == 1
    argv = launched["argv"]
    assert argv[argv.index("--machine_rank") + 1] == "1"
    # launch.json keeps what `make` wrote: the variable, read again at every launch
    recorded = json.loads((run_dir / "launch.json").read_text())["argv"]
    assert recorded[recorded.index("--machine_rank") + 1] == "$NODE_RANK"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["outcome"] == "succeeded"
    assert (summary["machines"], summary["machine_rank"], summary["processes"]) == (2, 1, 2)
    assert summary["final_copy"] is None  # machine 0 makes the epoch copy of the final file
