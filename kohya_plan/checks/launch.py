"""Past one GPU: processes and the step maths, warm-up, DDP, DeepSpeed, SLURM, accelerate's
default config file (scale-lab §1, measured with sd-scripts 48d368fa and accelerate 1.6.0)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from kohya_plan import rules
from kohya_plan.steps.count import warmup_for_processes

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan


def check_processes(plan: Plan, facts: Facts) -> Iterator[Finding]:
    """max_train_steps is never divided by the processes: P GPUs train P times as much."""
    steps = facts.steps
    if steps is None or steps.num_processes < 2 or steps.epochs_given:
        return
    p, total = steps.num_processes, steps.total_optimization_steps
    same = math.ceil(total / p)
    one = steps.one_process_epochs
    yield rules.STEPS_PROCESSES.finding(
        "training.max_train_steps",
        f"with {p} processes each of the {total} optimizer steps takes {p} batches (one per "
        f"process): the run trains {steps.batches_trained:,} batches, {p}× what {total} steps "
        f"train on one GPU ({steps.epochs} epochs instead of {one}); sd-scripts divides epochs "
        "among the processes, never max_train_steps",
        f"for the amount a one-GPU plan trains set training.max_train_steps = {same}, or give "
        "training.epochs instead",
    )


def check_warmup(plan: Plan, facts: Facts) -> Iterator[Finding]:
    """An integer warm-up is counted in scheduler steps: P of them per optimizer step."""
    p = plan.launch.num_processes
    value = plan.optimizer.warmup_steps
    if p < 2 or not value or facts.steps is None:
        return
    warmup = warmup_for_processes(
        value, num_processes=p, total_optimization_steps=facts.steps.total_optimization_steps
    )
    if not warmup.shortened:
        return
    yield rules.WARMUP_PROCESSES.finding(
        "optimizer.warmup_steps",
        f"the warm-up of {value} steps ends after {warmup.optimizer_steps:g} optimizer steps "
        f"with {p} processes (accelerate steps the LR scheduler once per process); the LR "
        f"peaks at step {warmup.peak_at_step}",
        f"for the warm-up a one-GPU run gets set optimizer.warmup_steps = {warmup.corrected}, "
        "or a ratio (0.05: that share of the run, whatever the processes)",
    )
    decay = plan.launch.extra.get("lr_decay_steps")
    if isinstance(decay, int) and not isinstance(decay, bool) and decay > 0:
        yield rules.WARMUP_PROCESSES.finding(
            "launch.extra.lr_decay_steps",
            f"lr_decay_steps {decay} is counted the same way: it ends after {decay / p:g} "
            f"optimizer steps with {p} processes",
            f"set lr_decay_steps = {decay * p} for a one-GPU run's decay",
        )


def check_ddp(plan: Plan, facts: Facts) -> Iterator[Finding]:
    la = plan.launch
    set_options = [
        name
        for name, on in (
            ("ddp_timeout", la.ddp_timeout is not None),
            ("ddp_gradient_as_bucket_view", la.ddp_gradient_as_bucket_view),
            ("ddp_static_graph", la.ddp_static_graph),
        )
        if on
    ]
    if la.num_processes == 1 and set_options:
        yield rules.DDP_IGNORED.finding(
            f"launch.{set_options[0]}",
            f"{', '.join(set_options)} only matter with several processes; this plan runs one",
            "remove them, or raise launch.num_processes",
        )
        return
    if la.ddp_timeout is not None and la.processes_per_machine == 1:
        yield rules.DDP_IGNORED.finding(
            "launch.ddp_timeout",
            f"sd-scripts passes ddp_timeout ({la.ddp_timeout} min) to torch only on a machine "
            "that shows it more than one CUDA GPU (train_util.py); with one process per machine "
            "(a cluster giving each task one GPU) torch's 30 minutes apply instead",
            "run several processes per machine, or leave it out: a hung peer then blocks up to "
            "30 minutes",
        )


def check_deepspeed(plan: Plan, facts: Facts) -> Iterator[Finding]:
    ds = plan.launch.deepspeed
    if ds is None:
        return
    if plan.launch.num_processes < 2:
        yield rules.DEEPSPEED_ONE_PROCESS.finding(
            "launch.deepspeed",
            "sd-scripts' DeepSpeed setup reads WORLD_SIZE, which accelerate sets only for a "
            "launch of several processes: a one-process run stops with KeyError: 'WORLD_SIZE' "
            "after loading the model",
            "set launch.num_processes = 2 or more, or remove [launch.deepspeed]",
        )
    for field, path, exists in facts.deepspeed_paths:
        if not exists:
            yield rules.DEEPSPEED_PATH.finding(
                field,
                f"{path} is not a folder; DeepSpeed would stop when it first offloads",
                "create the folder on the NVMe disk, or fix the path",
            )


def check_slurm(plan: Plan, facts: Facts) -> Iterator[Finding]:
    slurm = plan.slurm
    if slurm is None:
        return
    la = plan.launch
    per_node = max(slurm.gpus_per_node, 1)
    processes = slurm.nodes * per_node
    if la.num_processes != processes or la.num_machines != slurm.nodes:
        yield rules.SLURM_PROCESSES.finding(
            "launch.num_processes",
            f"[slurm] asks for {slurm.nodes} machine(s) × {per_node} process(es) = {processes}, "
            f"but launch says num_processes = {la.num_processes}, num_machines = "
            f"{la.num_machines}: the steps `check` counts would not be the job's",
            f"set launch.num_processes = {processes} and launch.num_machines = {slurm.nodes}",
        )


def check_accelerate_config(plan: Plan, facts: Facts) -> Iterator[Finding]:
    from kohya_plan.inputs.accelerate_config import would_change

    config = facts.accelerate_config
    if config is None:
        return
    path = config.path
    if config.error is not None:
        yield rules.ACCELERATE_DEFAULT_CONFIG.finding(
            "launch",
            f"{path} cannot be read ({config.error}); a plain `accelerate launch` fails on it "
            "(kohya-plan's launches pass their own --config_file and do not read it)",
            f"move it away: mv {path} {path}.bak",
        )
        return
    changes = would_change(config.values, plan)
    if not changes:
        return
    yield rules.ACCELERATE_DEFAULT_CONFIG.finding(
        "launch",
        f"{path} would have changed this launch: {'; '.join(changes)}. kohya-plan's launch "
        "does not read it (it passes the run's accelerate.json and every flag); "
        "`accelerate launch` by hand would",
        f"move it away if you start trainings by hand: mv {path} {path}.bak",
    )
