"""The SLURM job script (``job.sbatch``) for one run or a sweep's job array. Pure: text out.

The pattern is the one that ran on a real Slurm 22.05 cluster: one Slurm task per machine; every
task runs ``accelerate launch`` with ``--machine_rank $SLURM_PROCID``; the head node (rank 0's
address) is the first host of ``scontrol show hostnames $SLURM_JOB_NODELIST``; the number of
machines is ``$SLURM_NTASKS`` (``$SLURM_NNODES`` where no task count was asked for). The
accelerate argv is otherwise exactly a local launch's, with the machine flags filled in at run
time. Output (stdout and stderr, as in ``train.log`` of a local launch) goes to the run folder.

Stopping: ``#SBATCH --signal=B:USR1@N`` has Slurm signal the batch shell N seconds before the
time limit; the script then sends SIGTERM to the trainer (accelerate's launcher forwards it to
its workers) instead of waiting for the SIGKILL at the limit. ``scancel`` (SIGTERM) is forwarded
the same way. With ``save_state`` the job is ``--requeue``-able: at the time-limit signal it
stops the trainer and requeues itself, and every start resumes from the newest
``<output_name>*-state`` folder (``--resume DIR --skip_until_initial_step``).

Every value written into the script is quoted with :func:`shlex.quote`; the ``#SBATCH`` lines
too (sbatch strips the same quotes, ``%`` is written as ``%%``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kohya_plan import rundir

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from kohya_plan.plan.slurm import SlurmSection

MACHINE_FLAGS: dict[str, bool] = {
    "--num_processes": True,
    "--num_machines": True,
    "--machine_rank": True,
    "--main_process_ip": True,
    "--main_process_port": True,
    "--multi_gpu": False,
    "--gpu_ids": True,
}
"""accelerate flags the job script sets itself (True: the flag takes a value). ``--gpu_ids``
is among them because Slurm hands each task its GPUs (``CUDA_VISIBLE_DEVICES``)."""

DEFAULT_PORT_BASE = 20000
"""Without a fixed port, rank 0 listens on 20000 + job id mod 10000: jobs sharing a node differ."""

# the job's log, in the script's terms (sbatch --output, or where an array task goes)
_JOB_LOG = rundir.SLURM_OUTPUT.replace("%j", "${SLURM_JOB_ID}")
# where an array task's output goes once it knows its run folder
_TASK_LOG = rundir.SLURM_ARRAY_OUTPUT.replace("%A", "${SLURM_ARRAY_JOB_ID}").replace(
    "%a", "${SLURM_ARRAY_TASK_ID}"
)
# Every task: machine N > 0 writes its trainer's output to its own file beside the job's log
# (machine 0's output stays in it), so that each log holds one progress bar and one machine's
# failure; then accelerate with this task's machine rank.
_MACHINE_LOG = rundir.slurm_machine_log_name("J.out", "${SLURM_PROCID}").removeprefix("J")
_TASK_WRAPPER = (
    'n=$1; log=$2; shift 2; [ "$SLURM_PROCID" = 0 ] || exec >> "${log%.out}'
    + _MACHINE_LOG
    + '" 2>&1; exec "${@:1:n}" --machine_rank "$SLURM_PROCID" "${@:n+1}"'
)


@dataclass(frozen=True, slots=True)
class SbatchRun:
    """One run of a job script: its folder, the training script with its arguments, and
    (for ``save_state``) where sd-scripts writes its state folders."""

    run_dir: Path
    script_args: Sequence[str]
    output_dir: Path | None = None
    output_name: str | None = None


def without_machine_flags(flags: Sequence[str]) -> list[str]:
    """``flags`` without the ones in :data:`MACHINE_FLAGS` (and their values)."""
    kept: list[str] = []
    skip = False
    for flag in flags:
        if skip:
            skip = False
            continue
        name = flag.split("=", 1)[0]
        if name in MACHINE_FLAGS:
            skip = MACHINE_FLAGS[name] and "=" not in flag
            continue
        kept.append(flag)
    return kept


def _q(value: str | Path) -> str:
    return shlex.quote(str(value))


def _sbatch_path(path: Path) -> str:
    text = str(path)
    if "\n" in text or "\\" in text:
        msg = f"{text!r}: a job script's output path cannot hold a newline or a backslash"
        raise ValueError(msg)
    return text.replace("%", "%%")


def _array(name: str, values: Sequence[str]) -> str:
    return f"{name}=({' '.join(_q(v) for v in values)})"


def _expand(name: str) -> str:
    # "${A[@]+"${A[@]}"}": an empty array under `set -u` is an error before bash 4.4
    return f'${{{name}[@]+"${{{name}[@]}}"}}'


def _sbatch_lines(
    slurm: SlurmSection, *, job_name: str, output: str, save_state: bool
) -> list[str]:
    opts = [f"--job-name={_q(job_name)}", f"--nodes={slurm.nodes}", "--ntasks-per-node=1"]
    if slurm.gpus_per_node > 0:
        gpus = f"{slurm.gpu_type}:{slurm.gpus_per_node}" if slurm.gpu_type else slurm.gpus_per_node
        opts.append(f"--gpus-per-node={gpus}")
    if slurm.cpus_per_task is not None:
        opts.append(f"--cpus-per-task={slurm.cpus_per_task}")
    if slurm.mem is not None:
        opts.append(f"--mem={slurm.mem}")
    if slurm.time is not None:
        opts.append(f"--time={slurm.time}")
    for option, value in (
        ("partition", slurm.partition),
        ("account", slurm.account),
        ("constraint", slurm.constraint),
    ):
        if value is not None:
            opts.append(f"--{option}={_q(value)}")
    opts += [
        f"--output={_q(output)}",
        # the batch shell alone gets USR1 before the limit; it stops the trainer itself
        f"--signal=B:USR1@{slurm.signal_before_limit}",
    ]
    # a requeued job appends to its log instead of truncating it
    opts += ["--requeue", "--open-mode=append"] if save_state else ["--no-requeue"]
    for extra in slurm.extra_sbatch:
        opts.append(" ".join(_q(part) for part in shlex.split(extra)))
    return [f"#SBATCH {o}" for o in opts]


def _check_flags(flags: Sequence[str]) -> None:
    owned = [f for f in flags if f.split("=", 1)[0] in MACHINE_FLAGS]
    if owned:
        msg = (
            f"launcher flags {owned} are set by the job script from Slurm's environment — "
            "pass without_machine_flags(flags)"
        )
        raise ValueError(msg)


def _body(
    slurm: SlurmSection,
    *,
    accelerate_prefix: Sequence[str],
    launcher_flags: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    save_state: bool,
    processes_per_node: int,
    main_process_port: int | None,
) -> list[str]:
    port = (
        str(main_process_port)
        if main_process_port is not None
        else f"$(( {DEFAULT_PORT_BASE} + SLURM_JOB_ID % 10000 ))"
    )
    lines = [
        _array("LAUNCH", accelerate_prefix),
        _array("LAUNCHER_FLAGS", launcher_flags),
        f"PROCESSES_PER_MACHINE={processes_per_node}",
        f"MAIN_PROCESS_PORT={port}",
        f"SIGNAL_BEFORE_LIMIT={slurm.signal_before_limit}",
        "export PYTHONUNBUFFERED=1  # the log shows progress as it happens",
        *(f"export {key}={_q(value)}" for key, value in sorted(env.items())),
        "",
        "# One Slurm task per machine; accelerate's machine_rank is the task's SLURM_PROCID.",
        "NUM_MACHINES=${SLURM_NTASKS:-$SLURM_NNODES}",
        "NUM_PROCESSES=$(( NUM_MACHINES * PROCESSES_PER_MACHINE ))",
        'HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        'MACHINE_FLAGS=(--num_machines "$NUM_MACHINES" --num_processes "$NUM_PROCESSES")',
        'if [ "$NUM_PROCESSES" -gt 1 ]; then',
        '  MACHINE_FLAGS+=(--multi_gpu --main_process_ip "$HEAD_NODE"'
        ' --main_process_port "$MAIN_PROCESS_PORT")',
        "fi",
        "RESUME=()",
    ]
    if save_state:
        lines += [
            "# The newest saved state (a requeued job continues from it). An epoch state also",
            "# gives --initial_epoch: after a resume sd-scripts (48d368fa) restarts global_step",
            "# and saves steps-since-resume as current_step, so the state's step count is wrong",
            "# from the second start on; its current_epoch stays right. A state is complete",
            "# once accelerate wrote random_states_0.pkl, its last file (a job stopped at the",
            "# time limit can leave one cut short).",
            "while IFS= read -r state; do",
            '  [ -f "$state/train_state.json" ] && [ -f "$state/random_states_0.pkl" ] || continue',
            '  RESUME=(--resume "$state" --skip_until_initial_step)',
            '  case "$state" in',
            "    *-step[0-9]*-state) ;;",
            "    *)",
            "      epoch=$(sed -n 's/.*\"current_epoch\": *\\([0-9][0-9]*\\).*/\\1/p'"
            ' "$state/train_state.json")',
            '      [ -n "$epoch" ] && RESUME+=(--initial_epoch "$(( epoch + 1 ))")',
            "      ;;",
            "  esac",
            "  break",
            # the final <name>-state is left out: a finished run is not resumed
            'done < <(ls -1dt -- "$OUTPUT_DIR/$OUTPUT_NAME"-*-state 2> /dev/null)',
        ]
    lines += [
        'echo "kohya-plan: job ${SLURM_JOB_ID} (start $(( ${SLURM_RESTART_COUNT:-0} + 1 )))'
        " of run $RUN_DIR on ${SLURM_JOB_NODELIST}: ${NUM_MACHINES} machine(s) x"
        " ${PROCESSES_PER_MACHINE} process(es), head ${HEAD_NODE}:${MAIN_PROCESS_PORT}"
        '${RESUME[1]:+, resuming from ${RESUME[1]}}"',
        "",
        "SRUN_PID=",
        *(["REQUEUE="] if save_state else []),
        # SIGTERM to the job's steps (not to srun: it answers SIGTERM by killing the step);
        # accelerate's launcher forwards it to its workers
        "stop_trainer() {",
        '  echo "kohya-plan: $1: stopping the trainer"',
        '  [ -n "$SRUN_PID" ] || return 0',
        '  scancel --signal=TERM "$SLURM_JOB_ID" 2> /dev/null ||',
        '    kill -TERM "$SRUN_PID" 2> /dev/null',
        "}",
        "on_time_limit() {",
    ]
    if save_state:
        lines.append("  REQUEUE=1")
    lines += [
        '  stop_trainer "the time limit is ${SIGNAL_BEFORE_LIMIT} s away"',
        "}",
        "trap on_time_limit USR1",
        "trap 'stop_trainer \"SIGTERM (scancel or the time limit)\"' TERM",
        "trap 'stop_trainer SIGINT' INT",
        "",
        f"cd {_q(cwd)} || exit 1",
        # srun of Slurm 22.05 does not inherit --cpus-per-task: pass it on
        "srun --kill-on-bad-exit=1 ${SLURM_CPUS_PER_TASK:+--cpus-per-task=$SLURM_CPUS_PER_TASK} \\",
        f'  bash -c {_q(_TASK_WRAPPER)} kohya-plan-task "${{#LAUNCH[@]}}" "$JOB_LOG" \\',
        f'  {_expand("LAUNCH")} "${{MACHINE_FLAGS[@]}}" {_expand("LAUNCHER_FLAGS")} \\',
        f"  {_expand('TRAIN')} {_expand('RESUME')} &",
        "SRUN_PID=$!",
        "while :; do  # a trapped signal interrupts `wait`: wait again until srun is gone",
        '  wait "$SRUN_PID"',
        "  RC=$?",
        '  kill -0 "$SRUN_PID" 2> /dev/null || break',
        "done",
        'echo "kohya-plan: the trainer ended with exit status $RC"',
    ]
    if save_state:
        lines += [
            'if [ -n "$REQUEUE" ]; then',
            '  echo "kohya-plan: requeueing job $SLURM_JOB_ID; it resumes from the newest state"',
            '  scontrol requeue "$SLURM_JOB_ID"',
            "fi",
        ]
    lines.append('exit "$RC"')
    return lines


def _run_lines(run: SbatchRun, *, save_state: bool, job_log: str, indent: str = "") -> list[str]:
    lines = [
        f"RUN_DIR={_q(run.run_dir)}",
        f'JOB_LOG="$RUN_DIR/{job_log}"',
        _array("TRAIN", run.script_args),
    ]
    if save_state:
        if run.output_dir is None or not run.output_name:
            msg = f"{run.run_dir}: save_state needs the run's output_dir and output_name"
            raise ValueError(msg)
        lines += [f"OUTPUT_DIR={_q(run.output_dir)}", f"OUTPUT_NAME={_q(run.output_name)}"]
    return [indent + line for line in lines]


def _header(header: Sequence[str]) -> list[str]:
    return ["#!/bin/bash", *(f"# {line}".rstrip() for h in header for line in h.splitlines())]


def render_sbatch(
    slurm: SlurmSection,
    *,
    run_dir: Path,
    accelerate_prefix: Sequence[str],
    launcher_flags_without_machine_flags: Sequence[str],
    script_args: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    save_state: bool,
    output_dir: Path | None = None,
    output_name: str | None = None,
    job_name: str = "kohya-plan",
    processes_per_node: int | None = None,
    main_process_port: int | None = None,
    header: Sequence[str] = (),
) -> str:
    """The job script of one run; its log is ``<run_dir>/slurm-<job id>.out``.

    ``script_args`` is the training script and its arguments, as after the launcher flags
    of a local launch. ``processes_per_node`` defaults to ``slurm.gpus_per_node`` (at least
    1). ``output_dir``/``output_name`` locate the state folders; needed with ``save_state``.
    """
    _check_flags(launcher_flags_without_machine_flags)
    run = SbatchRun(run_dir, script_args, output_dir, output_name)
    lines = [
        *_header(header),
        *_sbatch_lines(
            slurm,
            job_name=job_name,
            output=_sbatch_path(run_dir) + "/" + rundir.SLURM_OUTPUT,
            save_state=save_state,
        ),
        "set -uo pipefail",
        "",
        *_run_lines(run, save_state=save_state, job_log=_JOB_LOG),
        *_body(
            slurm,
            accelerate_prefix=accelerate_prefix,
            launcher_flags=launcher_flags_without_machine_flags,
            cwd=cwd,
            env=env,
            save_state=save_state,
            processes_per_node=processes_per_node or max(slurm.gpus_per_node, 1),
            main_process_port=main_process_port,
        ),
    ]
    return "\n".join(lines) + "\n"


def render_sbatch_array(
    slurm: SlurmSection,
    *,
    sweep_dir: Path,
    runs: Sequence[SbatchRun],
    max_parallel: int | None,
    accelerate_prefix: Sequence[str],
    launcher_flags_without_machine_flags: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    save_state: bool,
    job_name: str = "kohya-plan-sweep",
    processes_per_node: int | None = None,
    main_process_port: int | None = None,
    header: Sequence[str] = (),
) -> str:
    """One job array for a sweep: array task i trains ``runs[i]``, at most ``max_parallel`` at
    once (``--array=0-N%K``). Task i logs to ``<runs[i].run_dir>/slurm-<array job>_<i>.out``
    (``<sweep_dir>/slurm-<array job>_<i>.out`` holds only what happens before that)."""
    if not runs:
        msg = "a job array needs at least one run"
        raise ValueError(msg)
    if max_parallel is not None and max_parallel < 1:
        msg = f"max_parallel must be >= 1, got {max_parallel}"
        raise ValueError(msg)
    _check_flags(launcher_flags_without_machine_flags)
    limit = "" if max_parallel is None else f"%{max_parallel}"
    sbatch = _sbatch_lines(
        slurm,
        job_name=job_name,
        output=_sbatch_path(sweep_dir) + "/" + rundir.SLURM_ARRAY_OUTPUT,
        save_state=save_state,
    )
    sbatch.insert(1, f"#SBATCH --array=0-{len(runs) - 1}{limit}")
    lines = [
        *_header(header),
        *sbatch,
        "set -uo pipefail",
        "",
        'case "${SLURM_ARRAY_TASK_ID:-}" in',
    ]
    for index, run in enumerate(runs):
        lines.append(f"  {index})")
        lines += _run_lines(run, save_state=save_state, job_log=_TASK_LOG, indent="    ")
        lines.append("    ;;")
    lines += [
        "  *)",
        f'    echo "kohya-plan: this job array has the runs 0-{len(runs) - 1}, not array task'
        " '${SLURM_ARRAY_TASK_ID:-}'\" >&2",
        "    exit 2",
        "    ;;",
        "esac",
        'exec >> "$JOB_LOG" 2>&1',
        *_body(
            slurm,
            accelerate_prefix=accelerate_prefix,
            launcher_flags=launcher_flags_without_machine_flags,
            cwd=cwd,
            env=env,
            save_state=save_state,
            processes_per_node=processes_per_node or max(slurm.gpus_per_node, 1),
            main_process_port=main_process_port,
        ),
    ]
    return "\n".join(lines) + "\n"
