"""The probe (run in the trainer's interpreter) reports a broken environment; it never crashes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from kohya_plan.setup.doctor.facts import PROBE_PREFIX
from kohya_plan.setup.install import script_path

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


def _probe(site: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, str(script_path("probe.py")), "--packages", "torch,accelerate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith(PROBE_PREFIX))
    return dict(json.loads(line.removeprefix(PROBE_PREFIX)))


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ('__version__ = "2.0.0"\n', {"version": "2.0.0"}),  # no torch.version at all
        ("", {"error": "the torch package has no __version__: not a real PyTorch install"}),
    ],
)
def test_a_foreign_torch_is_a_finding_not_a_crash(
    tmp_path: Path, module: str, expected: dict[str, str]
) -> None:
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(module, encoding="utf-8")
    found = _probe(tmp_path)
    torch = found["torch"]
    assert isinstance(torch, dict)
    assert {k: torch.get(k) for k in expected} == expected
    assert "accelerate_config" in found  # the rest of the environment was still examined
