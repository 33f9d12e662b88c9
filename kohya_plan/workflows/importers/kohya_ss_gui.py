"""The kohya_ss GUI's form as the importer reads it: a field's value from the file, else the
freshly started GUI's default, and the GUI's own filter that drops empty, false and 0 values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kohya_plan.workflows.importers.kohya_ss_fields import GUI_DEFAULTS, INSTRUCTION, MIGRATED
from kohya_plan.workflows.importers.values import Given

if TYPE_CHECKING:
    from kohya_plan.workflows.importers.state import Builder


class Gui:
    """The GUI's field values (file, else fresh-GUI default) and what was taken from them."""

    def __init__(self, data: dict[str, Any], values: dict[str, Any], builder: Builder) -> None:
        self.data = data
        self.values = values
        self.builder = builder
        self.options: dict[str, Given] = {}
        self.migrated = {new for old, new in MIGRATED.items() if old in data}

    def __getitem__(self, key: str) -> Any:
        if key in self.values and self.values[key] is not None:
            value = self.values[key]
            if isinstance(value, str) and INSTRUCTION.match(value):
                return ""  # a preset's "put the full path to ... here": nothing given yet
            return value
        return GUI_DEFAULTS.get(key, "")

    def in_file(self, key: str) -> bool:
        """Whether the file holds the field (or the old name it was migrated from)."""
        return key in self.data or key in self.migrated

    def given(self, key: str, value: Any = None, *, parts: dict[str, str] | None = None) -> Given:
        """The field's value (or `value`) with its source key, marked when not in the file."""
        return Given(self[key] if value is None else value, key, not self.in_file(key), parts)

    def option(self, name: str, key: str, value: Any = None) -> None:
        """Pass `value` (default: the field's) as option `name`, unless the GUI's filter drops
        it: `value not in ["", False, None]` — which also drops every 0 (L2562-2566)."""
        value = self[key] if value is None else value
        raw = self.values.get(key)
        if value not in ["", False, None]:
            self.options[name] = self.given(key, value)
        elif isinstance(raw, str) and INSTRUCTION.match(raw):
            self.builder.record(
                key, "unset", reason=f"the preset's instruction {raw!r}: no path given yet"
            )
        elif key in self.data:
            self.builder.record(key, "unset", reason=unset_reason(name, value, self.builder))

    def record(self, key: str, kind: Any, reason: str) -> None:
        """A record for a field the file holds (others need none)."""
        if key in self.data:
            self.builder.record(key, kind, reason=reason)


def unset_reason(option: str, value: Any, builder: Builder) -> str:
    """Why the GUI passed nothing for a field the file holds."""
    from kohya_plan.workflows.importers.values import known_options

    if option == "caption_extension" and value == "":
        return (
            "empty: the GUI passes nothing, so sd-scripts reads .caption files (its default) "
            "— .txt captions are not read"
        )
    if value == "" or value is None:
        return "empty: the GUI passes nothing"
    if value is False:
        return "off"
    if option == "seed":
        return "0: the GUI passes no seed, so sd-scripts picks a random one each run"
    spec = known_options("train_network.py").get(option)
    default = None if spec is None else spec.default
    if default not in (None, 0, 0.0, False, ""):
        return (
            f"{value!r}: the GUI drops 0 (0 == False in its filter, lora_gui.py L2562-2566), "
            f"so sd-scripts used its default {default!r}"
        )
    return f"{value!r}: the GUI passes nothing, sd-scripts' default applies"
