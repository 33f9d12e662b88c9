"""Built-in plan templates (`kohya-plan init`, `kohya-plan templates`)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kohya_plan import rundir
from kohya_plan.errors import UsageError

_MARK = "# template:"
PLAN_FILE = rundir.PLAN
"""The plan file `init` writes into a plan folder (a run folder holds one too)."""


@dataclass(frozen=True, slots=True)
class Template:
    """A commented plan file shipped with kohya-plan."""

    name: str
    description: str
    text: str


def _folder() -> Path:
    packaged = Path(str(resources.files("kohya_plan"))) / "templates"
    if packaged.is_dir():
        return packaged
    # A source checkout keeps them at the top level (the wheel force-includes them).
    return Path(__file__).resolve().parent.parent / "templates"


def list_templates() -> list[Template]:
    """All templates, sorted by name."""
    found = []
    for path in sorted(_folder().glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        first = text.splitlines()[0] if text else ""
        description = first.removeprefix(_MARK).strip() if first.startswith(_MARK) else ""
        found.append(Template(path.stem, description, text))
    return found


def get_template(name: str) -> Template:
    """One template by name; a clear error lists the others."""
    templates = {t.name: t for t in list_templates()}
    if name not in templates:
        known = ", ".join(templates) or "(none found)"
        msg = f"no template {name!r} — use one of: {known}"
        raise UsageError(msg)
    return templates[name]


def write_template(name: str, folder: Path, file_name: str = PLAN_FILE) -> Path:
    """Write a template as a new plan file; never overwrites."""
    template = get_template(name)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file_name
    try:
        with target.open("x", encoding="utf-8") as handle:
            handle.write(template.text)
    except FileExistsError:
        msg = f"{target} already exists — choose another folder, or remove the file first"
        raise UsageError(msg) from None
    return target
