"""`kohya-plan lr-find`: run the plan briefly with an adaptive optimizer, read where its chosen
learning rate goes flat (T19), and write a new plan beside the old one with that value (T20/T21).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from kohya_plan import rundir
from kohya_plan.errors import LaunchError
from kohya_plan.loading import apply_overrides, loads_toml, read_toml, validate_plan
from kohya_plan.plan.optimizer import is_adaptive
from kohya_plan.planning import check_data
from kohya_plan.trainlog.tensorboard import read_scalars
from kohya_plan.workflows.launch import LaunchOptions, prepare_report
from kohya_plan.workflows.launch import run as run_supervised
from kohya_plan.workflows.lrfind import search as lrfind
from kohya_plan.workflows.lrfind.chart import dlr_chart, preload

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from kohya_plan.summary import RunSummary
    from kohya_plan.workflows.lrfind.search import Plateau
    from kohya_plan.workflows.watch import RunView


@dataclass(frozen=True)
class LrFindResult:
    """What `lr-find` found and wrote."""

    summary: RunSummary
    run_dir: Path
    plateau: Plateau
    text_encoder: Plateau | None
    new_plan: Path
    chart: Path
    points: list[tuple[int, float]]


def lr_find(
    plan_path: Path,
    overrides: Iterable[str],
    *,
    searcher: str,
    steps: int | None,
    te_ratio: float,
    target: str,
    options: LaunchOptions,
    view_factory: Callable[[], RunView],
) -> LrFindResult:
    """T19–T21: a short adaptive-optimizer run, the flat value of its d*lr, a new plan."""
    plan_path = plan_path.expanduser().absolute()
    data = apply_overrides(read_toml(plan_path), overrides)
    original = validate_plan(data, plan_path.parent)
    derived = lrfind.derive_search(data, searcher=searcher, steps=steps or 200)
    report = check_data(derived, plan_path)
    if steps is None and report.facts.steps is not None:
        budget = lrfind.default_steps(report.facts.steps.batches_per_epoch)
        derived = lrfind.derive_search(data, searcher=searcher, steps=budget)
        report = check_data(derived, plan_path)
    # The search writes its own throwaway <name>-lr-find files: replacing them is expected.
    prepared = prepare_report(report, replace(options, overwrite=True))
    preload()  # the chart's libraries, while the search trains
    summary = run_supervised(prepared, options, view_factory)
    run = rundir.RunDir(prepared.run_dir)
    scalars = read_scalars(run.logging_dir)
    points = scalars.get(lrfind.UNET_TAG) or scalars.get("lr/d*lr/group0") or []
    if not points:
        cause = summary.cause.message if summary.cause else "no TensorBoard scalars were written"
        msg = f"the search run gave no {lrfind.UNET_TAG} values ({cause}); see {prepared.run_dir}"
        raise LaunchError(msg)
    plateau = lrfind.find_plateau(points)
    te_points = next((scalars[t] for t in lrfind.te_tags(original.family) if t in scalars), [])
    te_plateau = lrfind.find_plateau(te_points) if te_points else None
    adaptive_before = is_adaptive(original.optimizer.type)
    scheduler = "cosine_with_restarts" if adaptive_before else original.optimizer.scheduler
    table = lrfind.optimizer_table(
        plateau.value,
        target=target,
        te_ratio=te_ratio,
        scheduler=scheduler,
        train_te=not original.network.train_unet_only,
    )
    if not adaptive_before and scheduler == "cosine_with_restarts":
        table["scheduler_num_cycles"] = original.optimizer.scheduler_num_cycles
    note = (
        f"Found by `kohya-plan lr-find` ({lrfind.SEARCHERS[searcher]}, run "
        f"{prepared.run_dir.name}): {lrfind.describe(plateau)}.\n"
        f"T20/T21: {table['type']} with U-Net LR = "
        + ("the found value" if target == "adamw8bit" else "a third of it")
        + (f", text encoder × {te_ratio:g} (T17)." if "text_encoder_lr" in table else ".")
    )
    text = plan_path.read_text(encoding="utf-8")
    try:
        new_text = lrfind.new_plan_text(text, table, note)
    except ValueError as exc:
        msg = (
            f"lr-find could not write the new plan beside {plan_path.name} ({exc}); set "
            f"[optimizer] by hand to {table} (the search run is {prepared.run_dir})"
        )
        raise LaunchError(msg) from exc
    new_plan = _new_plan_path(plan_path, table["unet_lr"], target)
    validate_plan(apply_overrides(loads_toml(new_text), overrides), plan_path.parent)
    with new_plan.open("x", encoding="utf-8") as handle:
        handle.write(new_text)
    chart = run / rundir.LR_FIND_PNG
    chart.write_bytes(dlr_chart(points, plateau, te_points))
    run.write_json(
        rundir.LR_FIND_JSON,
        {
            "searcher": lrfind.SEARCHERS[searcher],
            "tag": lrfind.UNET_TAG,
            "value": plateau.value,
            "settled": plateau.settled,
            "since_step": plateau.since_step,
            "spread": plateau.spread,
            "new_plan": str(new_plan),
            "optimizer": table,
        },
    )
    return LrFindResult(summary, prepared.run_dir, plateau, te_plateau, new_plan, chart, points)


def _new_plan_path(plan_path: Path, lr: float, target: str) -> Path:
    """`<plan>.lr-3.3e-05.toml` (`.lion-…` for Lion) beside the plan; never an existing file."""
    kind = "lion" if target == "lion" else "lr"
    candidate = plan_path.with_name(f"{plan_path.stem}.{kind}-{lr:.3g}.toml")
    counter = 2
    while candidate.exists():
        candidate = plan_path.with_name(f"{plan_path.stem}.{kind}-{lr:.3g}-{counter}.toml")
        counter += 1
    return candidate
