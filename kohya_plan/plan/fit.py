"""Does the plan fit its model family? Cross-section rules the `Plan` validator applies.

Every key a plan sets becomes an option of ONE script, the family's (`train_network.py`,
`sdxl_train_network.py`, `flux_train_network.py`); sd-scripts' config file accepts any key
silently, so each is checked against the option snapshot of that script here — `launch.extra`
included. Each problem reads `field: what is wrong — how to fix it` (loading.py turns it into
a finding on that field).
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from kohya_plan.families import FAMILIES, Family, family
from kohya_plan.families.base import applies
from kohya_plan.options import (
    OPTION_FOR,
    extra_refusal,
    options_for,
    owned_options,
    value_problem,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from kohya_plan.plan import Plan


def set_keys(plan: Plan) -> dict[str, Any]:
    """Plan keys (OPTION_FOR's) whose value differs from the key's default and is not off."""
    found: dict[str, Any] = {}
    for key in OPTION_FOR:
        # "launch.deepspeed.zero_stage": a table inside a section, absent when not written
        *path, name = key.split(".")
        section: BaseModel | None = plan
        for part in path:
            section = getattr(section, part, None)
            if section is None:
                break
        if section is None:
            continue
        value = getattr(section, name)
        field = type(section).model_fields[name]
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if value in (None, False, {}, ()) or value == default:
            continue
        found[key] = value
    return found


def _families_with(option: str) -> list[str]:
    return [f.name for f in FAMILIES.values() if option in options_for(f.script)]


def family_problems(plan: Plan) -> list[str]:
    """Everything in `plan` that its family's script cannot take, as `field: problem — fix`."""
    fam = family(plan.model.family)
    problems: list[str] = []
    problems += _section_problems(plan, fam)
    problems += _key_problems(plan, fam)
    problems += _model_file_problems(plan, fam)
    problems += _extra_problems(plan, fam)
    return problems


def _section_problems(plan: Plan, fam: Family) -> list[str]:
    problems = []
    for owner in FAMILIES.values():
        section = owner.section
        if section and section != fam.section and getattr(plan, section, None) is not None:
            problems.append(
                f"{section}: the [{section}] section is for {owner.label} plans "
                f"({owner.script}) and this plan is {fam.label} ({fam.script}) — remove "
                f'[{section}], or set model.family = "{owner.name}"'
            )
    return problems


def _key_problems(plan: Plan, fam: Family) -> list[str]:
    options = options_for(fam.script)
    own_sections = {f.section for f in FAMILIES.values() if f.section}
    problems = []
    for key, value in set_keys(plan).items():
        option = OPTION_FOR[key]
        if key.partition(".")[0] in own_sections:
            continue  # a family's own section is judged as a whole (above)
        if option not in options:
            others = [n for n in _families_with(option) if n != fam.name]
            fix = (
                f"remove it, or set model.family = {others[0]!r} if that is the model"
                if others
                else "remove it"
            )
            problems.append(
                f"{key}: {fam.script} has no --{option}, so a {fam.label} plan cannot set it "
                f"(got {value!r}) — {fix}"
            )
        elif option in fam.refused_options:
            problems.append(f"{key}: {fam.refused_options[option]} — remove it")
    return problems


def _model_file_problems(plan: Plan, fam: Family) -> list[str]:
    problems = []
    for spec in fam.model_files:
        if not applies(plan, spec.unless):
            continue  # e.g. Chroma has no CLIP-L (sd-scripts builds a dummy)
        if spec.required and getattr(plan.model, spec.key) is None:
            problems.append(
                f"model.{spec.key}: a {fam.label} plan needs {spec.what} as one .safetensors "
                f'file — set model.{spec.key} = "path/to/file.safetensors" or a Hub reference '
                f'such as "{spec.example}"'
            )
    return problems


def _extra_problems(plan: Plan, fam: Family) -> list[str]:
    options = options_for(fam.script)
    owned = owned_options()
    problems = []
    for key, item in plan.launch.extra.items():
        field = f"launch.extra.{key}"
        if (refusal := extra_refusal(key)) is not None:
            problems.append(f"{field}: {refusal}")
        elif key not in options:
            others = [n for n in _families_with(key) if n != fam.name]
            if others:
                hint = f"it is an option of {' and '.join(FAMILIES[n].script for n in others)}"
            else:
                close = difflib.get_close_matches(key, options, n=1, cutoff=0.7)
                hint = f'did you mean "{close[0]}"?' if close else "see sd-scripts' --help"
            problems.append(f"{field}: {key!r} is not a {fam.script} option — {hint}")
        elif key in owned:
            plan_key = next((k for k, v in OPTION_FOR.items() if v == key), None)
            where = f"set {plan_key} instead" if plan_key else "kohya-plan sets it itself"
            problems.append(f"{field}: {key!r} is set by the plan — {where}")
        elif key in fam.refused_options:
            problems.append(f"{field}: {fam.refused_options[key]} — remove it")
        elif (problem := value_problem(options[key], item)) is not None:
            problems.append(f"{field}: {problem} — write the value sd-scripts expects")
    return problems
