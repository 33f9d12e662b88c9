"""Two processes through `kohya-plan launch` on a CPU (tiny SD1.5 model), against the table.

accelerate cannot run two processes on a machine without a GPU as it is (it wraps the frozen
U-Net in DDP and sd-scripts dies, see labs/cpu_ddp/sitecustomize.py); the test puts that
test-only shim on PYTHONPATH, which `launch` passes on to the trainer. The plan is one row of
the measured table (scale-lab §1): B = 8 batches per epoch for one process, P = 2, GA = 2,
max_train_steps = 3 → 4 batches per epoch on each process, 2 epochs, 3 optimizer steps; two
sample prompts per epoch, shared out between the ranks.
Skipped where sd-scripts or its Python are missing. About 1-2 minutes and 10 GB.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sdlab
from helpers import base_plan, make_images, write_plan

from kohya_plan.planning import check_plan

if TYPE_CHECKING:
    from collections.abc import Callable

    from click.testing import Result

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sdlab.skip_reason() is not None, reason=str(sdlab.skip_reason())),
]

SHIM = Path(__file__).resolve().parent / "cpu_ddp"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_processes_train_the_steps_of_the_table(
    tmp_path: Path, run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = sdlab.lab_cache_dir()
    model, tokenizer = sdlab.tiny_sd15(cache), sdlab.tokenizer_cache(cache)
    make_images(tmp_path / "data" / "2_testchar", [(64, 64)] * 4, caption="testchar, red")
    data = base_plan(
        model={"base": str(model), "tokenizer_cache_dir": str(tokenizer)},
        dataset={"resolution": 64, "min_bucket_reso": 64, "max_bucket_reso": 128},
        network={"dim": 4, "alpha": 2},
        optimizer={"type": "AdamW", "scheduler": "constant"},
        training={
            "max_train_steps": 3,
            "gradient_accumulation_steps": 2,
            "mixed_precision": "no",
            "save_every_n_epochs": 1,
            "max_data_loader_n_workers": 0,
        },
        output={"save_precision": "float"},
        sampling={
            "every_n_epochs": 1,
            "prompts": [
                "testchar, red --w 64 --h 64 --s 2 --d 1",
                "testchar, blue --w 64 --h 64 --s 2 --d 2",
            ],
        },
        launch={
            "sd_scripts": str(sdlab.sd_scripts_dir()),
            "python": str(sdlab.sd_python()),
            "num_processes": 2,
            "num_cpu_threads_per_process": 1,
            "main_process_port": _free_port(),
        },
    )
    data["training"].pop("epochs")
    plan = write_plan(tmp_path, data)
    steps = check_plan(plan).facts.steps
    assert steps is not None
    assert (steps.batches_per_epoch, steps.epochs, steps.total_optimization_steps) == (4, 2, 3)
    assert (steps.effective_batch, steps.one_process_epochs) == (4, 1)  # batch 1 × 2 × GA 2

    monkeypatch.setenv("PYTHONPATH", str(SHIM))
    result = run_cli("launch", plan, "--plain")
    print(result.output)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    log = (run_dir / "train.log").read_text(encoding="utf-8", errors="replace")
    # both ranks ran (the shim says so once per rank), and sd-scripts counted as planned
    assert "cpu-ddp-shim: rank 0: not wrapping" in log
    assert "cpu-ddp-shim: rank 1: not wrapping" in log
    assert "num batches per epoch / 1epochのバッチ数: 4" in log
    assert "num epochs / epoch数: 2" in log
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["outcome"] == "succeeded"
    assert (summary["steps_done"], summary["steps_total"]) == (3, 3)
    assert (summary["epochs_done"], summary["epochs_total"]) == (2, 2)
    # only rank 0 writes the LoRA files: one per epoch, the last one unnumbered
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*.safetensors")) == [
        "testlora-000001.safetensors",
        "testlora-000002.safetensors",  # the final file, copied under its epoch's name (T29)
        "testlora.safetensors",
    ]
    # the two prompts were shared out: rank 0 made prompt 0, rank 1 prompt 1, every epoch
    samples = sorted(p.name.split("_2026")[0] for p in (out / "sample").glob("*.png"))
    assert [s.rsplit("_", 2)[-2:] for s in samples] == [
        ["e000001", "00"],
        ["e000001", "01"],
        ["e000002", "00"],
        ["e000002", "01"],
    ]
    assert summary["processes"] == 2
    assert summary["notes"][0].startswith("2 processes: only rank 0 writes the LoRA files")
    assert "prompt k by rank k mod 2" in summary["notes"][1]
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "only rank 0 writes the LoRA files" in page
    assert page.count('data-name="testlora_e00000') == 4  # both ranks' samples in the grid
