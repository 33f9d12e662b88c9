"""lr-find, report and board: the tools around a run."""

from __future__ import annotations

from pathlib import Path

import click

from kohya_plan.cli.group import FiniteFloatRange, cli, plan_argument, set_option


@cli.command(name="lr-find")
@plan_argument
@set_option
@click.option(
    "--with",
    "searcher",
    type=click.Choice(["dadapt", "prodigy"]),
    default="dadapt",
    show_default=True,
    help="Adaptive optimizer for the search: DAdaptAdam or Prodigy.",
)
@click.option(
    "--steps", type=click.IntRange(2, 100_000), help="Step budget (default: from the data)."
)
@click.option(
    "--optimizer",
    "target",
    type=click.Choice(["adamw8bit", "lion"]),
    default="adamw8bit",
    show_default=True,
    help="Optimizer of the new plan: AdamW8bit at the found LR (T20), Lion at a third (T21).",
)
@click.option(
    "--te-ratio",
    type=FiniteFloatRange(0.1, 0.5),
    default=0.5,
    show_default=True,
    help="Text-encoder LR as a fraction of the U-Net LR (T17: 1/10 to 1/2).",
)
@click.option("--plain", is_flag=True, help="Plain progress lines instead of a live bar.")
@click.option("--quiet", "-q", is_flag=True, help="Show only the result.")
def lr_find(
    plan_path: Path,
    overrides: tuple[str, ...],
    searcher: str,
    steps: int | None,
    target: str,
    te_ratio: float,
    plain: bool,
    quiet: bool,
) -> None:
    """Find a learning rate the tutorial's way (T19-T21) and write a new plan with it.

    Runs PLAN briefly with DAdaptAdam (or Prodigy) at LR 1.0, reads TensorBoard's
    lr/d*lr/unet curve, finds where it goes flat, and writes PLAN's sibling
    <plan>.lr-<value>.toml (never overwriting) with AdamW8bit at that LR and the text
    encoder at --te-ratio of it. The chart is shown and saved as lr-find.png.

    \b
    Examples:
      kohya-plan lr-find plan.toml
      kohya-plan lr-find plan.toml --with prodigy --steps 300
      kohya-plan lr-find plan.toml --optimizer lion --te-ratio 0.2
    """
    from kohya_plan import display
    from kohya_plan.workflows.launch import LaunchOptions, is_interactive
    from kohya_plan.workflows.lrfind.run import lr_find as find

    mode = "quiet" if quiet else "plain" if plain or not is_interactive() else "rich"
    result = find(
        plan_path,
        overrides,
        searcher=searcher,
        steps=steps,
        te_ratio=te_ratio,
        target=target,
        options=LaunchOptions(),
        view_factory=lambda: display.run_view(mode),
    )
    display.lr_find_result(result)


@cli.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path, file_okay=False))
def report(run_dir: Path) -> None:
    """Write RUN_DIR/report.html: plan, command, dataset, loss and LR charts, samples by epoch.

    One self-contained page (images embedded) to pick the best epoch by looking (T24, T30).
    `launch` writes it at the end of every run; this writes it again.

    \b
    Examples:
      kohya-plan report runs/xunxian-20261126-120000
    """
    from kohya_plan import display
    from kohya_plan.report import write_report
    from kohya_plan.rundir import RunDir

    display.plain(f"Wrote {write_report(RunDir(run_dir).require_made().path)}")


@cli.command(name="board")
@click.argument("run_dirs", nargs=-1, metavar="[RUN_DIR]...", type=click.Path(path_type=Path))
@click.option("--open", "open_it", is_flag=True, help="Open it in the web browser.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: a free one).")
def board_command(run_dirs: tuple[Path, ...], open_it: bool, host: str, port: int | None) -> None:
    """Show runs' TensorBoard logs (loss, learning rates) until Ctrl-C.

    RUN_DIR may be a run folder, its logs/ folder, or a folder of runs (default: the current
    folder).

    \b
    Examples:
      kohya-plan board runs/xunxian-20261126-120000
      kohya-plan board runs --open
    """
    from kohya_plan import display
    from kohya_plan.workflows.board import (
        find_runs,
        open_browser,
        serve_forever_until_interrupt,
        start_board,
    )

    board = start_board(find_runs(list(run_dirs) or [Path()]), host=host, port=port)
    for warning in board.warnings:
        display.plain(f"warning: {warning}")
    display.plain(f"TensorBoard: {board.url}  (Ctrl-C to stop)")
    if open_it and not open_browser(board.url):
        display.plain("(no web browser could be opened: open the address yourself)")
    serve_forever_until_interrupt(board)
