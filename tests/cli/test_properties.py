"""Property-based: whatever a person (or a fuzzer) gives kohya-plan, it answers 0 or 2.

Any bytes as a plan file, any `--set` strings, any folder names in the dataset: `check` and
`make` exit 0 or 2, never print a traceback or "kohya-plan failed unexpectedly" (the exit-1 path
for bugs), and write nothing when they exit 2. A few hundred examples each, no deadline, no
example database (nothing is written into the checkout), so CI stays fast.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import toml
from click.testing import CliRunner
from helpers import base_plan, make_images
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kohya_plan.cli import cli
from kohya_plan.plan import Plan

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _invoke(*args: Any) -> Any:
    # catch_exceptions=True: an exception escaping the CLI is a finding here, not a crash
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


def assert_answers_0_or_2(root: Path, *args: Any) -> Any:
    """Run kohya-plan; 0 or 2, no traceback, no unexpected failure, nothing written on 2."""
    before = _files(root)
    result = _invoke(*args)
    output = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code in (0, 2), f"exit {result.exit_code}: {output}"
    assert "failed unexpectedly" not in output, output
    assert "Traceback" not in output, output
    event(f"{args[0]}: exit {result.exit_code}")
    if result.exit_code == 2 and args[0] == "make":
        assert _files(root) == before, "a refused make must write nothing"
    return result


class Sandbox:
    """A fresh folder per example (hypothesis runs many examples in one test call)."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(dir=self.base))
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _dataset(root: Path) -> None:
    make_images(root / "data" / "5_testchar", [(512, 512), (512, 768)])


# --- any bytes as a plan file -------------------------------------------------------------

VALID = toml.dumps(base_plan()).encode()
SECTIONS = list(Plan.model_fields)
KEYS = sorted(
    {
        k
        for name in SECTIONS
        for k in getattr(Plan.model_fields[name].annotation, "model_fields", {})
    }
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        ["data", "out", "../..", "", " ", "C:\\x", "nan", "1e3", "yes", "networks.lora"]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def mutated_plans(draw: st.DrawFn) -> bytes:
    """A valid plan with random keys set, replaced or removed, serialised as TOML."""
    plan: dict[str, Any] = base_plan()
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from([*SECTIONS, "trainig", "x"]))
        key = draw(st.sampled_from(KEYS) | st.text(min_size=1, max_size=12))
        action = draw(st.sampled_from(["set", "set", "delete", "section"]))
        if action == "delete":
            if isinstance(plan.get(section), dict):
                plan[section].pop(key, None)
        elif action == "section":
            plan[section] = draw(values)
        else:
            target = plan.setdefault(section, {})
            if isinstance(target, dict):
                value = draw(values)
                if value is not None:
                    target[key] = value
    try:
        return toml.dumps(plan).encode()
    except Exception:  # the toml writer has its own limits (e.g. odd strings): not ours
        return VALID


plan_bytes = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    mutated_plans(),
    st.binary(max_size=40).map(lambda noise: VALID[: len(VALID) // 2] + noise),
)


@FUZZ
@given(data=plan_bytes)
def test_any_bytes_as_a_plan_file(tmp_path: Path, data: bytes) -> None:
    with Sandbox(tmp_path) as root:
        _dataset(root)
        plan = root / "plan.toml"
        plan.write_bytes(data)
        assert_answers_0_or_2(root, "check", plan, "--no-hardware")
        assert_answers_0_or_2(root, "check", plan, "--json", "--no-hardware")
        assert_answers_0_or_2(root, "make", plan)


# --- any --set strings ---------------------------------------------------------------------

dotted = st.lists(
    st.sampled_from(SECTIONS + KEYS + ["extra", "args", "subsets"]) | st.text(max_size=8),
    min_size=1,
    max_size=4,
).map(".".join)
set_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ['"x"', "[1, 2]", "{ a = 1 }", "true", "1e3", "nan", '"C:\\Users"', "'", "[", "{"]
    ),
)
overrides = st.lists(
    st.one_of(st.text(max_size=40), st.tuples(dotted, set_values).map("=".join)),
    min_size=1,
    max_size=4,
)


@FUZZ
@given(sets=overrides)
def test_any_set_strings(tmp_path: Path, sets: list[str]) -> None:
    with Sandbox(tmp_path) as root:
        _dataset(root)
        plan = root / "plan.toml"
        plan.write_bytes(VALID)
        args = [a for s in sets for a in ("--set", s)]
        assert_answers_0_or_2(root, "check", plan, "--no-hardware", *args)
        assert_answers_0_or_2(root, "make", plan, *args)


# --- any folder names in the dataset --------------------------------------------------------


# Folder rules waived, so that odd names reach the renderer instead of stopping at check.
WAIVING = toml.dumps(
    base_plan(rules={"allow": ["folder-no-repeats", "folder-zero-repeats", "missing-captions"]})
).encode()


def _usable(name: str) -> bool:
    return (
        name not in ("", ".", "..")
        and "/" not in name
        and "\0" not in name
        and len(name.encode("utf-8", "surrogatepass")) <= 200
    )


folder_names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"), min_size=1, max_size=40
).filter(_usable)
repeat_names = st.tuples(st.integers(-2, 200), folder_names).map(lambda t: f"{t[0]}_{t[1]}")


@FUZZ
@given(names=st.lists(st.one_of(folder_names, repeat_names), min_size=1, max_size=4, unique=True))
def test_any_folder_names_in_the_dataset(tmp_path: Path, names: list[str]) -> None:
    with Sandbox(tmp_path) as root:
        _dataset(root)  # one good folder, so that most examples get as far as rendering
        for index, name in enumerate(names):
            try:
                make_images(root / "data" / name, [(512, 512)] * (index % 3), caption=name[:20])
            except OSError:
                return  # the file system refuses the name itself: nothing for kohya-plan to do
        plan = root / "plan.toml"
        plan.write_bytes(WAIVING)
        assert_answers_0_or_2(root, "check", plan, "--no-hardware")
        assert_answers_0_or_2(root, "make", plan, "--dry-run")
        assert_answers_0_or_2(root, "make", plan)
