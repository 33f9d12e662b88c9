"""Whether the run can write what it will write: the folders, and names that fit in them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan import rules
from kohya_plan.inputs.paths import name_length

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan

_WHO = {
    "output.dir": (
        "sd-scripts saves the LoRA files there and would fail at the first save, after the "
        "first epoch",
        "choose a writable output.dir",
    ),
    "output.runs_dir": (
        "`make` writes the run folder there",
        "set output.runs_dir to a writable folder",
    ),
    "model.tokenizer_cache_dir": (
        "`make` stores the CLIP tokenizer there so that sd-scripts never downloads it mid-run",
        "set model.tokenizer_cache_dir to a writable folder, or HF_HOME elsewhere (the default "
        "is $HF_HOME/kohya-plan/tokenizers)",
    ),
}

RUN_FOLDER_SUFFIX = len("-YYYYmmdd-HHMMSS-99")
"""What `make` adds to output.name for a run folder (rundir.next_run_dir)."""


def sd_scripts_suffix(plan: Plan) -> int:
    """The longest name sd-scripts adds to output.name in output.dir (train_util.py).

    ``{name}-step{steps:08d}.{ext}`` for files (and ``-step…-state`` folders); with samples,
    ``{name}_e{epoch:06d}_{i:02d}_{%Y%m%d%H%M%S}_{seed}.png`` in ``sample/`` (a 32-bit seed).
    """
    files = len(f"-step{0:08d}.{plan.output.save_model_as}")
    samples = len(f"_e{0:06d}_{0:02d}_{'0' * 14}_{2**32}.png") if plan.sampling.prompts else 0
    return max(files, samples)


def check_writable(plan: Plan, facts: Facts) -> Iterator[Finding]:
    for target in facts.write_targets:
        if target.problem is None:
            continue
        consequence, fix = _WHO.get(target.field, ("the run writes there", "choose another"))
        yield rules.FOLDER_NOT_WRITABLE.finding(
            target.field, f"{target.problem}; {consequence}", fix
        )


def check_name_length(plan: Plan, facts: Facts) -> Iterator[Finding]:
    name = plan.output.name
    length = name_length(name)
    limits = {t.field: t.name_max for t in facts.write_targets}
    for field, extra, example in (
        (
            "output.dir",
            sd_scripts_suffix(plan),
            "sd-scripts' file names (NAME-step00000001.safetensors)",
        ),
        ("output.runs_dir", RUN_FOLDER_SUFFIX, "run folder names (NAME-YYYYmmdd-HHMMSS-N)"),
    ):
        limit = limits.get(field, 255)
        if length + extra > limit:
            yield rules.NAME_TOO_LONG.finding(
                "output.name",
                f"{length} bytes long; {example} add up to {extra} more, and the file system "
                f"allows {limit} bytes per name, so sd-scripts (or `make`) would fail on it",
                f"shorten output.name to at most {limit - extra} bytes",
            )
            return
