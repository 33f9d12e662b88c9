"""Step maths for P processes, row by row against what sd-scripts printed and ran.

The table is the one measured with real sd-scripts runs (48d368fa, accelerate 1.6.0, torchrun
with gloo on a CPU): 4 images × 2 repeats at 64 px, batch size 1, so B = 8 batches per epoch as
one process sees them. Columns: processes P, gradient accumulation GA, what the plan gives,
the steps sd-scripts prints as "override steps" (epochs given), the batches per epoch it prints,
the epochs it runs and the optimizer steps it runs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import pytest
from helpers import base_plan, make_images, write_plan

from kohya_plan.planning import check_plan
from kohya_plan.steps.count import total_steps, warmup_for_processes

if TYPE_CHECKING:
    from pathlib import Path

B = 8


class Row(NamedTuple):
    processes: int
    accumulation: int
    given: dict[str, int]
    override_steps: int | None
    batches_printed: int
    epochs: int
    steps_run: int


TABLE = [
    Row(1, 1, {"epochs": 1}, 8, 8, 1, 8),
    Row(1, 2, {"epochs": 1}, 4, 8, 1, 4),
    Row(1, 1, {"max_train_steps": 4}, None, 8, 1, 4),
    Row(1, 2, {"max_train_steps": 3}, None, 8, 1, 3),
    Row(2, 1, {"epochs": 2}, 8, 4, 2, 8),
    Row(2, 2, {"epochs": 1}, 2, 4, 1, 2),
    Row(2, 1, {"max_train_steps": 4}, None, 4, 1, 4),
    Row(2, 2, {"max_train_steps": 3}, None, 4, 2, 3),
]


def _row_id(row: Row) -> str:
    ((key, value),) = row.given.items()
    return f"P{row.processes}-GA{row.accumulation}-{key}{value}"


@pytest.mark.parametrize("row", TABLE, ids=_row_id)
def test_total_steps_matches_the_measured_row(row: Row) -> None:
    report = total_steps(
        B,
        epochs=row.given.get("epochs"),
        max_train_steps=row.given.get("max_train_steps"),
        gradient_accumulation_steps=row.accumulation,
        num_processes=row.processes,
    )
    assert report.batches_per_epoch == row.batches_printed
    assert report.epochs == row.epochs
    assert report.total_optimization_steps == row.steps_run
    assert report.epochs_override_steps == (row.override_steps is not None)
    if row.override_steps is not None:
        assert report.total_optimization_steps == row.override_steps
    # the documented closed forms of the lab notes
    if "epochs" in row.given:
        expected = row.given["epochs"] * math.ceil(B / row.processes / row.accumulation)
        assert report.total_optimization_steps == expected
    else:
        per_epoch = math.ceil(math.ceil(B / row.processes) / row.accumulation)
        assert report.epochs == math.ceil(row.given["max_train_steps"] / per_epoch)
    # the scheduler is stepped P times per optimizer step
    assert report.lr_scheduler_steps == row.steps_run * row.processes


@pytest.mark.parametrize("row", TABLE, ids=_row_id)
def test_check_computes_the_row_from_the_images(tmp_path: Path, row: Row) -> None:
    # the same data as the measured runs: 4 images of 64 px with 2 repeats
    make_images(tmp_path / "data" / "2_testchar", [(64, 64)] * 4)
    data = base_plan(
        dataset={"resolution": 64, "min_bucket_reso": 64, "max_bucket_reso": 128},
        training={"batch_size": 1, "gradient_accumulation_steps": row.accumulation},
        launch={"num_processes": row.processes},
    )
    data["training"].pop("epochs")  # base_plan's default; the row says epochs or steps
    data["training"].update(row.given)
    plan = write_plan(tmp_path, data)
    steps = check_plan(plan).facts.steps
    assert steps is not None
    assert steps.batches_per_epoch == row.batches_printed
    assert steps.epochs == row.epochs
    assert steps.total_optimization_steps == row.steps_run


# ----------------------------------------------------------------------------- warm-up


def test_integer_warmup_ends_after_w_over_p_optimizer_steps() -> None:
    # measured: W = 4, U-Net LR 1e-4; one process 2.5e-5, 5e-5, 7.5e-5, 1e-4;
    # two processes 5e-5, 1e-4, 1e-4, 1e-4
    one = warmup_for_processes(4, num_processes=1, total_optimization_steps=4)
    two = warmup_for_processes(4, num_processes=2, total_optimization_steps=4)
    assert (one.scheduler_steps, one.optimizer_steps, one.peak_at_step) == (4, 4.0, 4)
    assert not one.shortened
    assert one.corrected == 4
    assert (two.scheduler_steps, two.optimizer_steps, two.peak_at_step) == (4, 2.0, 2)
    assert two.shortened
    assert two.corrected == 8
    lr = 1e-4
    fractions = [min(1.0, k * 2 / two.scheduler_steps) for k in range(1, 5)]
    assert [lr * f for f in fractions] == pytest.approx([5e-5, 1e-4, 1e-4, 1e-4])
    # the corrected value gives back the one-process schedule
    fixed = warmup_for_processes(two.corrected, num_processes=2, total_optimization_steps=4)
    assert fixed.optimizer_steps == one.optimizer_steps


def test_warmup_not_divisible_by_processes() -> None:
    w = warmup_for_processes(5, num_processes=2, total_optimization_steps=100)
    assert w.optimizer_steps == 2.5
    assert w.peak_at_step == 3  # the scheduler count passes 5 at the third optimizer step
    assert w.corrected == 10


def test_ratio_warmup_is_already_right() -> None:
    # a ratio is taken of max_train_steps × P, so it lasts the same share of the run
    w = warmup_for_processes(0.1, num_processes=4, total_optimization_steps=100)
    assert w.scheduler_steps == 40
    assert w.optimizer_steps == 10.0
    assert not w.shortened
    assert w.corrected == 0.1


def test_no_warmup() -> None:
    w = warmup_for_processes(0, num_processes=8, total_optimization_steps=100)
    assert (w.scheduler_steps, w.optimizer_steps, w.peak_at_step, w.shortened) == (0, 0.0, 0, False)
    assert w.corrected == 0


def test_warmup_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="num_processes"):
        warmup_for_processes(4, num_processes=0, total_optimization_steps=10)
    with pytest.raises(ValueError, match="lr_warmup_steps"):
        warmup_for_processes(-1, num_processes=2, total_optimization_steps=10)
