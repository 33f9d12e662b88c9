"""`kohya-plan sweep`: the grid, every point checked before anything is written, one run folder
per point with its own name, the sweep record, the job array for SLURM."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from helpers import base_plan, make_images, write_plan

from kohya_plan.errors import PlanError, UsageError
from kohya_plan.loading import load_plan, loads_toml
from kohya_plan.workflows.sweep import (
    grid_points,
    load_sweep,
    make_sweep,
    parse_grid,
    plan_sweep,
    read_queue,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from click.testing import Result


def _plan(root: Path, **sections: dict[str, Any]) -> Path:
    make_images(root / "data" / "2_testchar", [(64, 64)] * 4)
    data = base_plan(
        dataset={"resolution": 64, "min_bucket_reso": 64, "max_bucket_reso": 128},
        optimizer={"learning_rate": 1e-4, "unet_lr": 1e-4, "text_encoder_lr": 2e-5},
        **sections,
    )
    return write_plan(root, data)


def test_the_grid_is_every_combination_first_axis_slowest() -> None:
    axes = parse_grid(["optimizer.unet_lr=1e-4,5e-5", "network.dim=16,32,64"])
    assert [a.key for a in axes] == ["optimizer.unet_lr", "network.dim"]
    assert axes[0].values == (1e-4, 5e-5)  # typed as TOML
    assert axes[1].values == (16, 32, 64)
    points = grid_points(axes)
    assert len(points) == 6
    assert points[0].values == {"optimizer.unet_lr": 1e-4, "network.dim": 16}
    assert points[1].values == {"optimizer.unet_lr": 1e-4, "network.dim": 32}
    assert [p.label for p in points[:2]] == ["unet_lr1e-4_dim16", "unet_lr1e-4_dim32"]
    assert grid_points(parse_grid(['optimizer.type="AdamW",Lion']))[1].label == "typeLion"


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("network.dim", "is not key=value,value"),
        ("network.dim=16,", "has an empty value"),
        ("network.dim=16,16", "lists a value twice"),
        ("dim=16,32", "is not a plan key"),
        ("output.name=a,b", "cannot be swept: each point is named <name>-<its values>"),
        ("output.runs_dir=a,b", "cannot be swept"),
    ],
)
def test_bad_grids_say_why(grid: str, message: str) -> None:
    with pytest.raises(PlanError) as err:
        parse_grid([grid])
    assert message in err.value.findings[0].message


def test_every_point_is_checked_and_every_problem_named_at_once(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    # 5e-5 makes text_encoder_lr 2e-5 a ratio of 0.4 (fine); 1e-5 of 2 (T17 error);
    # dim 8 with alpha 16 breaks T12 at every learning rate
    with pytest.raises(PlanError) as err:
        plan_sweep(plan, ["optimizer.unet_lr=5e-5,1e-5", "network.dim=8,32"])
    text = [f"{f.field}: {f.message}" for f in err.value.findings]
    assert any(
        t.startswith(
            "optimizer.text_encoder_lr: points 2 (unet_lr1e-5_dim8), 3 (unet_lr1e-5_dim32)"
        )
        for t in text
    ), text
    assert any(
        t.startswith("network.alpha: points 0 (unet_lr5e-5_dim8), 2 (unet_lr1e-5_dim8)")
        for t in text
    ), text
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_point_the_schema_refuses_is_named_too(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    with pytest.raises(PlanError) as err:
        plan_sweep(plan, ["network.dim=16,-1"])
    (finding,) = err.value.findings
    assert finding.field == "network.dim"
    assert finding.message.startswith("point 1 (dim-1): ")


def test_a_sweep_makes_one_named_run_folder_per_point(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    sweep = make_sweep(plan, ["network.dim=16,32"])
    assert sweep.path.parent == tmp_path / "runs"
    assert sweep.path.name.startswith("testlora-sweep-")
    assert [d.parent for d in sweep.run_dirs] == [sweep.path, sweep.path]
    names = []
    for run_dir, dim in zip(sweep.run_dirs, (16, 32), strict=True):
        made = load_plan(run_dir / "plan.toml")
        assert made.network.dim == dim
        assert made.output.name == f"testlora-dim{dim}"  # its LoRA files are its own
        assert made.sweep is None
        config = loads_toml((run_dir / "config.toml").read_text(encoding="utf-8"))
        assert config["network"]["network_dim"] == dim
        names.append(config["saving"]["output_name"])
    assert names == ["testlora-dim16", "testlora-dim32"]
    record = json.loads((sweep.path / "sweep.json").read_text(encoding="utf-8"))
    assert record["grid"] == {"network.dim": [16, 32]}
    assert [p["run_dir"] for p in record["points"]] == [str(d) for d in sweep.run_dirs]
    again = load_sweep(sweep.path)
    assert again.points == sweep.points
    assert [i.state for i in read_queue(again)] == ["pending", "pending"]
    assert not (sweep.path / "job.sbatch").exists()


def test_the_plans_own_sweep_table(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    plan = _plan(
        tmp_path,
        sweep={"grid": {"optimizer.unet_lr": [1e-4, 5e-5]}, "max_parallel": 1},
        launch={"num_processes": 1},
    )
    result = run_cli("sweep", plan, "--slurm", "--no-run")
    assert result.exit_code == 0, result.output
    assert "2 points: optimizer.unet_lr = 0.0001, 5e-05" in result.output
    (folder,) = (tmp_path / "runs").iterdir()
    script = (folder / "job.sbatch").read_text(encoding="utf-8")
    assert "#SBATCH --array=0-1%1" in script  # max_parallel from [sweep]
    for index, run_dir in enumerate(load_sweep(folder).run_dirs):
        assert f"  {index})\n    RUN_DIR={run_dir}\n" in script
        assert f"--config_file {run_dir}/accelerate.json" in script
    assert check_ok(run_cli, plan)


def check_ok(run_cli: Callable[..., Result], plan: Path) -> bool:
    return run_cli("check", plan, "--no-hardware").exit_code == 0


def test_no_grid_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"has no grid: give --grid section\.key=value,value"):
        plan_sweep(_plan(tmp_path))


def test_a_job_array_needs_points_that_launch_alike(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    with pytest.raises(UsageError, match=r"point 1 \(num_processes2\) launches differently"):
        make_sweep(plan, ["launch.num_processes=1,2"], slurm=True)
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # nothing left behind
    sweep = make_sweep(plan, ["launch.num_processes=1,2"])  # locally: fine
    assert len(sweep.run_dirs) == 2
