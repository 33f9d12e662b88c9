"""Whether the trainer can run here at all (sd-scripts found)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan import rules

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan


def check_sd_scripts(plan: Plan, facts: Facts) -> Iterator[Finding]:
    if not facts.sd_scripts_found:
        yield rules.SD_SCRIPTS_MISSING.finding(
            "launch.sd_scripts",
            f"no {plan.script_name} in {facts.sd_scripts}; `make` works but `launch` will not",
            "run `kohya-plan setup` (in a clone of kohya-plan: scripts/setup-sd-scripts), "
            "set launch.sd_scripts, or set KOHYA_SD_SCRIPTS",
        )
