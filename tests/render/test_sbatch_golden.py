"""Golden files for the SLURM job script (kohya_plan.render.sbatch).

Each case of sbatch_cases.py is compared byte for byte with tests/render/golden/<case>.sbatch.
When a change to the script is intended, refresh them with
`pytest tests/render/test_sbatch_golden.py --update-golden` and review the diff. Every case is
also checked by `bash -n` (and by shellcheck where it is installed).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from sbatch_cases import CASES

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("case", sorted(CASES))
def test_job_script_matches_golden(case: str, update_golden: bool) -> None:
    text = CASES[case]()
    golden = GOLDEN / f"{case}.sbatch"
    if update_golden:
        golden.write_text(text, encoding="utf-8")
        return
    assert golden.exists(), f"{golden} missing: run pytest --update-golden"
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(CASES))
def test_job_script_is_valid_bash(case: str, tmp_path: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    script = tmp_path / f"{case}.sbatch"
    script.write_text(CASES[case](), encoding="utf-8")
    res = subprocess.run([bash, "-n", script], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(CASES))
def test_job_script_passes_shellcheck(case: str, tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    script = tmp_path / f"{case}.sbatch"
    script.write_text(CASES[case](), encoding="utf-8")
    res = subprocess.run(
        [shellcheck, "--severity=warning", script], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout
