"""The house's rules, checked on the code (docs/architecture.md): data flows one way.

Every module belongs to a stage; a module may import its own stage or earlier ones, never a
later one, and no set of modules imports itself in a circle. Imports inside functions (the lazy
ones) count as much as top-level ones; imports under `if TYPE_CHECKING:` are annotations only
and are left out. These tests read the source with `ast`; nothing is imported.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

import pytest
from helpers import REPO

if TYPE_CHECKING:
    from pathlib import Path

PACKAGE = REPO / "kohya_plan"

# In the order data flows (docs/architecture.md). `rundir` and `run/` are edges any stage may
# use: they own the run folder and the starting of processes, and import nothing after them.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("__init__", "errors", "findings", "rules", "options", "rundir", "run")),
    ("families", ("families", "lora")),
    ("plan", ("plan", "loading", "templates")),
    ("steps", ("steps",)),
    ("inputs", ("inputs",)),
    ("checks", ("checks",)),
    ("render", ("render",)),
    ("planning", ("planning",)),
    ("trainlog", ("trainlog",)),
    ("summary", ("summary", "outputs")),
    ("report", ("report",)),
    ("workflows", ("workflows", "setup")),
    ("display", ("display",)),
    ("cli", ("cli", "__main__")),
)
STAGE_OF = {top: index for index, (_, tops) in enumerate(STAGES) for top in tops}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def stage(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in STAGE_OF:
        pytest.fail(f"{module} belongs to no stage: add it to STAGES and docs/architecture.md")
    return STAGE_OF[top]


def _type_checking_block(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """kohya_plan modules that `path` imports at run time (top level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking_block(node):
            skip.update(id(child) for sub in node.body for child in ast.walk(sub))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            # `from kohya_plan.x import y` may import the submodule kohya_plan.x.y
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t.startswith("kohya_plan") and t in known)
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(path, name, known) for name, path in found.items()}


def test_every_module_has_a_stage() -> None:
    for name in modules():
        stage(name)


def test_no_import_from_a_later_stage() -> None:
    climbing = [
        f"{source} ({STAGES[stage(source)][0]}) imports {target} ({STAGES[stage(target)][0]})"
        for source, targets in graph().items()
        for target in sorted(targets)
        if stage(target) > stage(source)
    ]
    assert not climbing, "imports that climb back up the stream:\n" + "\n".join(climbing)


def test_no_import_circles() -> None:
    edges = graph()
    # A package imports its own submodules (its face re-exports them): that edge is not a circle.
    for name in edges:
        edges[name] = {t for t in edges[name] if not t.startswith(name + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


def test_the_checker_sees_a_climbing_import(tmp_path: Path) -> None:
    """The rule can fail: a plan module importing the renderer is reported."""
    source = tmp_path / "launch.py"
    source.write_text("def f():\n    from kohya_plan.render.config_toml import X\n")
    known = {"kohya_plan.render.config_toml", "kohya_plan.plan.launch"}
    found = imports(source, "kohya_plan.plan.launch", known)
    assert found == {"kohya_plan.render.config_toml"}
    assert stage("kohya_plan.render.config_toml") > stage("kohya_plan.plan.launch")


def test_only_the_cli_imports_click_and_only_display_imports_rich() -> None:
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and not node.level
        }
        if "click" in names:
            assert name.startswith("kohya_plan.cli."), f"{name} imports click"
        if "rich" in names:
            assert name.startswith("kohya_plan.display"), f"{name} imports rich"


def test_only_run_starts_processes() -> None:
    for name, path in modules().items():
        if name.startswith("kohya_plan.run"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bad = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
            if alias.name in ("subprocess", "multiprocessing")
        } | {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module in ("subprocess", "multiprocessing")
        }
        assert not bad, f"{name} imports {bad}: starting processes belongs in kohya_plan.run"


def test_run_folder_names_are_spelled_in_rundir_only() -> None:
    """The run folder has one owner: no other module spells its file names."""
    from kohya_plan import rundir

    names = [getattr(rundir, n) for n in rundir.__all__ if n.isupper()]
    offenders = []
    for name, path in modules().items():
        if name == "kohya_plan.rundir":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in names:
                offenders.append(f"{name}:{node.lineno} spells {node.value!r}")
    assert not offenders, "\n".join(offenders)


LONG_MODULE_LINES = 600


def test_a_long_module_says_why_it_stays_long() -> None:
    """architecture.md §1: no module over ~600 lines without a reason written at its top."""
    unexplained = []
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= LONG_MODULE_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "stays long because" not in " ".join(doc.split()):
            unexplained.append(f"{name} ({text.count(chr(10))} lines)")
    assert unexplained == [], "split these, or say at their top why they stay long"
