"""Commands that run, follow and stop training: launch, summary, submit, status, stop, sweep,
compare."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kohya_plan.errors import KohyaPlanError

if TYPE_CHECKING:
    from collections.abc import Iterator

from kohya_plan.cli.group import Seconds, cli, set_option


@cli.command()
@click.argument("target", metavar="PLAN|RUN_DIR", type=click.Path(path_type=Path))
@set_option
@click.option("--plain", is_flag=True, help="Plain progress lines instead of a live bar.")
@click.option("--quiet", "-q", is_flag=True, help="Show only the summary at the end.")
@click.option("--overwrite", is_flag=True, help="Allow replacing LoRA files of the same name.")
@click.option("--resume", is_flag=True, help="Continue from the newest saved state.")
@click.option(
    "--resume-from",
    type=click.Path(path_type=Path, file_okay=False),
    help="Continue from this saved state folder (<name>-…-state).",
)
@click.option(
    "--keep-going-on-nan", is_flag=True, help="Do not stop the run when avr_loss becomes NaN."
)
@click.option(
    "--grace",
    type=Seconds(0, 3600),
    default=30.0,
    show_default=True,
    help="How long a graceful stop waits for the trainer to save (Ctrl-C, `stop`): seconds, "
    "or 90s, 5m; at most 1 h. Then SIGTERM, then SIGKILL.",
)
@click.option(
    "--stall-timeout",
    type=Seconds(1, 7 * 86400, off=True),
    default="30m",
    show_default=True,
    help="Warn when the trainer prints nothing for this long (sd-scripts prints every step): "
    "30m, 2h, 600; 0 turns it off.",
)
@click.option(
    "--stop-on-stall",
    is_flag=True,
    help="Also stop the run (gracefully) at a stall; the summary names it.",
)
@click.option("--board", "with_board", is_flag=True, help="Start TensorBoard alongside the run.")
@click.option(
    "--trust-edited",
    is_flag=True,
    help="Run a RUN_DIR whose launch.json was changed after `make` (refused otherwise).",
)
def launch(
    target: Path,
    overrides: tuple[str, ...],
    plain: bool,
    quiet: bool,
    overwrite: bool,
    resume: bool,
    resume_from: Path | None,
    keep_going_on_nan: bool,
    grace: float,
    stall_timeout: float,
    stop_on_stall: bool,
    with_board: bool,
    trust_edited: bool,
) -> None:
    """Run a plan (a new run folder is made first) or a run folder made by `make`.

    Runs exactly the command `make --dry-run` shows, shows progress, stops cleanly on
    Ctrl-C (twice: at once) or `kohya-plan stop RUN_DIR` from another terminal, and ends
    with a summary (also in summary.json). One launch per output: a second launch into the
    same output.dir + output.name (or of the same run folder) is refused while one runs.

    A closed terminal (SIGHUP) or a closed output (`| head`) does NOT stop the training:
    kohya-plan stops showing progress and goes on supervising; train.log, kohya-plan.log and
    summary.json are written as always (`kohya-plan summary RUN_DIR` shows it; `kohya-plan
    stop RUN_DIR` stops it). If kohya-plan itself is killed, its guardian process stops the
    trainer the graceful way; `summary` then says "interrupted".

    Exit status: 0 when the run succeeded, 3 when the training failed, 130 when stopped.

    \b
    Examples:
      kohya-plan launch plan.toml
      kohya-plan launch runs/xunxian-20261126-120000 --plain
      kohya-plan launch plan.toml --resume
      kohya-plan launch plan.toml --stall-timeout 1h --stop-on-stall
    """
    from kohya_plan import display
    from kohya_plan.workflows.launch import LaunchOptions, exit_code, is_interactive, prepare, run

    options = LaunchOptions(
        overwrite=overwrite,
        resume=resume,
        resume_from=resume_from,
        keep_going_on_nan=keep_going_on_nan,
        grace_s=grace,
        stall_timeout_s=stall_timeout,
        stop_on_stall=stop_on_stall,
        trust_edited=trust_edited,
    )
    with display.decode_progress(not quiet) as progress:
        prepared = prepare(target, overrides, options, progress=progress)
    if prepared.edited_launch:
        import shlex

        display.warning(
            f"{prepared.run_dir}'s launch.json was changed after `make`; running it AS EDITED "
            f"(--trust-edited): {shlex.join(prepared.argv)} (in {prepared.cwd})"
        )
    mode = "quiet" if quiet else "plain" if plain or not is_interactive() else "rich"
    if mode != "quiet":
        with _closed_output_is_fine():
            display.plain(f"Run folder: {prepared.run_dir} (log: train.log)")
    board = None
    if with_board:
        from kohya_plan.workflows.board import start_board

        board = start_board([prepared.run_dir], require_logs=False)
        with _closed_output_is_fine():
            display.plain(
                f"TensorBoard: {board.url} (shows the run once sd-scripts starts logging)"
            )
    try:
        summary = run(prepared, options, lambda: display.run_view(mode))
    finally:
        if board is not None:
            board.stop()
    with _closed_output_is_fine():
        display.run_summary(summary, str(prepared.run_dir))
    raise SystemExit(exit_code(summary))


@contextlib.contextmanager
def _closed_output_is_fine() -> Iterator[None]:
    """A closed stdout (`| head`, a dead `tee`, a closed terminal) is no reason to fail a run:
    what was to be printed is in the run folder; stdout goes to the null device from then on."""
    try:
        yield
    except OSError:
        from kohya_plan.workflows.watch import silence_broken_output

        silence_broken_output()
    except SystemExit as exc:
        if exc.code != 1:
            raise
        # rich answers a broken pipe with SystemExit(1), stdout already on the null device.


@cli.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print summary.json's content.")
def summary(run_dir: Path, as_json: bool) -> None:
    """Show a launched run's summary again, from train.log and the TensorBoard events.

    A run submitted to SLURM: from its job's log and the scheduler's record (sacct).

    \b
    Examples:
      kohya-plan summary runs/xunxian-20261126-120000
      kohya-plan summary runs/xunxian-20261126-120000 --json
    """
    from kohya_plan import display
    from kohya_plan.workflows.slurm import summary_of

    try:
        result = summary_of(run_dir)
    except KohyaPlanError as exc:
        if not as_json:
            raise
        # --json always prints JSON: scripts read stdout, the error included.
        error = {"ok": False, "run_dir": str(run_dir), "error": str(exc)}
        display.raw(json.dumps(error, indent=2, ensure_ascii=False) + "\n")
        raise SystemExit(exc.exit_code) from None
    if as_json:
        display.raw(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        display.run_summary(result, str(run_dir))


@cli.command()
@click.argument("target", metavar="PLAN|RUN_DIR", type=click.Path(path_type=Path))
@set_option
@click.option("--overwrite", is_flag=True, help="Allow replacing LoRA files of the same name.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
def submit(target: Path, overrides: tuple[str, ...], overwrite: bool, as_json: bool) -> None:
    """Run a plan (or a run folder `make --slurm` made) as a SLURM job, with sbatch.

    A plan is made into a new run folder with job.sbatch first ([slurm] for the resources,
    one task per machine; without it, one machine with launch.num_processes GPUs). The job
    id goes into the run folder's slurm.json; the job's output into slurm-<job id>.out there.

    \b
    Examples:
      kohya-plan submit plan.toml
      kohya-plan submit runs/xunxian-20261126-120000
      kohya-plan status runs/xunxian-20261126-120000
    """
    from kohya_plan import display
    from kohya_plan.workflows.slurm import submit as run_submit

    done = run_submit(target, overrides, overwrite=overwrite)
    if as_json:
        payload = {"run_dir": str(done.run_dir), "job_id": done.job_id, "log": str(done.log)}
        display.raw(json.dumps(payload, indent=2) + "\n")
    else:
        display.submitted(done)


@cli.command()
@click.argument(
    "target", metavar="RUN_DIR|SWEEP_DIR", type=click.Path(path_type=Path, file_okay=False)
)
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status(target: Path, as_json: bool) -> None:
    """Where a run stands: not launched, pending, running (step, epoch, loss), done or failed.

    For a SLURM run it asks the scheduler (squeue while it waits or runs, sacct once it
    ended) and reads the job's log; for a sweep folder, every point. Exit status 0 (also
    for a failed run: see its cause), 2 when TARGET is not a run or sweep folder.

    \b
    Examples:
      kohya-plan status runs/xunxian-20261126-120000
      kohya-plan status runs/xunxian-sweep-20261126-120000 --json
    """
    from kohya_plan import display
    from kohya_plan.workflows.slurm import run_status
    from kohya_plan.workflows.sweep import is_sweep_dir, sweep_status

    if is_sweep_dir(target):
        rows = sweep_status(target)
        if as_json:
            payload = [{"point": label, **s.to_json()} for label, s in rows]
            display.raw(json.dumps(payload, indent=2, default=str) + "\n")
        else:
            display.statuses(rows)
        return
    result = run_status(target)
    if as_json:
        display.raw(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    else:
        display.run_status(result)


@cli.command(name="stop")
@click.argument(
    "target", metavar="RUN_DIR|SWEEP_DIR", type=click.Path(path_type=Path, file_okay=False)
)
@click.option("--now", is_flag=True, help="Kill the trainer at once (as a second Ctrl-C).")
@click.option("--no-wait", is_flag=True, help="Only ask; do not wait for the run to end.")
@click.option(
    "--timeout",
    type=Seconds(1, 86400),
    help="How long to wait for the run to end (default: its --grace + 30 s; SLURM: 2 min).",
)
def stop(target: Path, now: bool, no_wait: bool, timeout: float | None) -> None:
    """Stop a running run from another terminal, the same graceful way as Ctrl-C.

    A run launched here: kohya-plan (the `launch` that runs it) asks the trainer to stop —
    SIGINT to its process group, so sd-scripts saves — waits --grace, then terminates and
    kills what is left, and writes the summary; if that kohya-plan is gone, its guardian
    stops the trainer. A run submitted to SLURM: scancel (the trainer gets SIGTERM; --now:
    SIGKILL). A sweep folder: its SLURM job array is cancelled. Waits until the run has
    ended and prints its outcome.
    Exit status: 0 when it ended (or, with --no-wait, was asked), 2 when nothing runs in
    RUN_DIR, 1 when it had not ended within --timeout.

    \b
    Examples:
      kohya-plan stop runs/xunxian-20261126-120000
      kohya-plan stop runs/xunxian-20261126-120000 --now
      kohya-plan stop runs/xunxian-sweep-20261126-120000     # a sweep's SLURM job array
    """
    from kohya_plan import display
    from kohya_plan.workflows.stop import stop_run
    from kohya_plan.workflows.sweep import is_sweep_dir, stop_sweep

    if is_sweep_dir(target):
        display.stopped(stop_sweep(target, now=now), str(target), now=now)
        return
    done = stop_run(target, now=now, wait=not no_wait, timeout_s=timeout)
    display.plain(f"{done.action}")
    if done.ended is None:
        return
    if not done.ended:
        display.error(
            f"{target} is still running: the trainer may still be saving — wait, or "
            f"`kohya-plan stop {target} --now` kills it"
        )
        raise SystemExit(1)
    if done.stopper == "slurm":  # the job may have written nothing yet: its state
        from kohya_plan.workflows.slurm import run_status

        display.run_status(run_status(target))
        return
    from kohya_plan.workflows.results import summary_from_disk

    display.run_summary(summary_from_disk(target), str(target))


@cli.command()
@click.argument("target", metavar="PLAN|SWEEP_DIR", type=click.Path(path_type=Path))
@click.option(
    "--grid",
    "grid",
    multiple=True,
    metavar="KEY=V1,V2",
    help="A plan key and its values (repeatable; else the plan's [sweep] grid).",
)
@set_option
@click.option("--slurm", is_flag=True, help="Submit the points as one SLURM job array.")
@click.option(
    "--max-parallel", type=click.IntRange(min=1), help="With --slurm: points running at once."
)
@click.option("--no-run", is_flag=True, help="Only make the folders (and the job array).")
@click.option("--retry-failed", is_flag=True, help="Resuming: run failed points again too.")
@click.option("--plain", is_flag=True, help="Plain progress lines instead of a live bar.")
@click.option("--quiet", "-q", is_flag=True, help="Show only each point's summary.")
def sweep(
    target: Path,
    grid: tuple[str, ...],
    overrides: tuple[str, ...],
    slurm: bool,
    max_parallel: int | None,
    no_run: bool,
    retry_failed: bool,
    plain: bool,
    quiet: bool,
) -> None:
    """One run per combination of values: make them all, then run them one by one or on SLURM.

    Every point is PLAN with its values set and named <name>-<values> (so its LoRA files
    are its own); all points are checked before anything is written. They go into a new
    sweep folder, and run here one after another (a failed point does not stop the
    others; Ctrl-C stops the queue, `kohya-plan sweep SWEEP_DIR` goes on where it
    stopped) or, with --slurm, as one job array. `kohya-plan compare SWEEP_DIR` then
    puts them side by side. Exit status: 0 when every point succeeded, 3 when one failed,
    130 when stopped.

    \b
    Examples:
      kohya-plan sweep plan.toml --grid optimizer.unet_lr=1e-4,5e-5 --grid network.dim=16,32
      kohya-plan sweep plan.toml --slurm --max-parallel 2     # the plan's [sweep] grid
      kohya-plan sweep runs/xunxian-sweep-20261126-120000     # go on where it stopped
    """
    from kohya_plan import display, rundir
    from kohya_plan.workflows.launch import is_interactive
    from kohya_plan.workflows.sweep import (
        is_sweep_dir,
        load_sweep,
        make_sweep,
        run_queue,
        submit_sweep,
    )

    if target.is_dir() and is_sweep_dir(target):
        if grid or overrides or slurm or max_parallel is not None:
            msg = (
                f"{target} is a made sweep: resuming takes no --grid, --set, --slurm or "
                "--max-parallel (sweep its plan again for a new one)"
            )
            raise click.UsageError(msg)
        made = load_sweep(target)
    else:
        if max_parallel is not None and not slurm:
            msg_0 = "--max-parallel goes with --slurm"
            raise click.UsageError(msg_0)
        made = make_sweep(target, grid, overrides, slurm=slurm, max_parallel=max_parallel)
        display.sweep_made(made)
        if slurm:
            if no_run:
                display.plain(f"Submit it with: sbatch {made.path / rundir.JOB_SBATCH}")
                return
            job = submit_sweep(made)
            display.plain(f"Submitted job array {job}: kohya-plan status {made.path}")
            return
        if no_run:
            display.plain(f"Run it with: kohya-plan sweep {made.path}")
            return
    mode = "quiet" if quiet else "plain" if plain or not is_interactive() else "rich"
    result = run_queue(
        made,
        lambda: display.run_view(mode),
        retry_failed=retry_failed,
        on_point=display.queue_point,
        on_summary=lambda item, summary: display.run_summary(summary, str(item.run_dir)),
    )
    display.queue_result(result, str(made.path))
    raise SystemExit(result.exit_code)


@cli.command()
@click.argument(
    "targets",
    nargs=-1,
    required=True,
    metavar="RUN_DIR...|SWEEP_DIR",
    type=click.Path(path_type=Path, file_okay=False),
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write it (default: the sweep folder, else the runs' folder).",
)
def compare(targets: tuple[Path, ...], output: Path | None) -> None:
    """Write compare.html: the runs' samples side by side (same prompt and seed), by epoch.

    Also the loss per epoch of every run in one chart, the settings in which the runs
    differ as their labels, each LoRA file's size, and with two differing settings the
    last epoch as the X/Y grid of the tutorial's last step (T30). One self-contained page.

    \b
    Examples:
      kohya-plan compare runs/xunxian-sweep-20261126-120000
      kohya-plan compare runs/a-20261126-120000 runs/b-20261126-130000 -o compare.html
    """
    from kohya_plan import display
    from kohya_plan.workflows.compare import write_compare

    display.plain(f"Wrote {write_compare(list(targets), output=output)}")
