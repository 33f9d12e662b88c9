"""[rules]: waivers — rule ids whose findings are reported as waived instead of blocking."""

from __future__ import annotations

from pydantic import Field, field_validator

from kohya_plan.plan.common import Section, Text
from kohya_plan.rules import RULES


class RulesSection(Section):
    """Waivers: rule ids whose findings are reported as waived instead of blocking."""

    allow: tuple[Text, ...] = Field((), description='Rule ids to waive, e.g. ["te-lr-ratio"].')

    @field_validator("allow")
    @classmethod
    def _known_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import difflib

        problems = []
        for rule_id in value:
            rule = RULES.get(rule_id)
            if rule is None:
                close = difflib.get_close_matches(rule_id, RULES, n=1)
                hint = f'did you mean "{close[0]}"?' if close else "see `kohya-plan rules`"
                problems.append(f"unknown rule id {rule_id!r} — {hint}")
            elif not rule.waivable:
                problems.append(
                    f"{rule_id!r} cannot be waived: sd-scripts would fail or train nothing — "
                    "fix what it reports instead (`kohya-plan rules` lists the waivable ids)"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return value
