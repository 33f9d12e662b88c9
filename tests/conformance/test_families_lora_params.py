"""LoRA parameters per unit of rank, from sd-scripts' own create_network on the real model shapes.

`scripts/lora_params_per_rank.py` builds the full-size SD1.5, SDXL and FLUX.1-dev models on the
meta device and asks networks.lora / networks.lora_flux (default arguments: no conv layers) for
their LoRA modules. The SD1.5 numbers must be the ones `check` uses for the LoRA file size; the
SDXL and Flux numbers are the ground truth for the families' own (measured at the pinned commit;
the tiny runs' LoRA files in tests/fixtures/logs/families hold exactly these counts).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import sdlab
from helpers import REPO

from kohya_plan.lora import SD15_PARAMS_PER_RANK, SD15_UNET_PARAMS_PER_RANK

pytestmark = [
    pytest.mark.sdscripts,
    pytest.mark.skipif(sdlab.skip_reason() is not None, reason=str(sdlab.skip_reason())),
]

SCRIPT = REPO / "scripts" / "lora_params_per_rank.py"

# part -> (modules, parameters per rank), measured with sd-scripts at the pinned commit
SDXL = {"lora_unet": (722, 2_659_840), "lora_te1": (72, 165_888), "lora_te2": (192, 737_280)}
FLUX_DEV = {"lora_unet": (304, 4_786_176), "lora_te1": (72, 165_888)}
FLUX_DEV_T5 = {**FLUX_DEV, "lora_te3": (168, 1_818_624)}


@pytest.fixture(scope="module")
def table() -> dict[str, Any]:
    python, sd = sdlab.sd_python(), sdlab.sd_scripts_dir()
    assert python is not None
    assert sd is not None
    res = subprocess.run(
        [str(python), str(SCRIPT), "--sd-scripts", str(sd)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    data: dict[str, Any] = json.loads(res.stdout)
    return data


def _parts(row: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {k: (v["modules"], v["params_per_rank"]) for k, v in row.items() if k != "total"}


def test_sd15_matches_the_numbers_check_uses(table: dict[str, Any]) -> None:
    sd15 = table["sd15"]
    assert sd15["lora_unet"]["params_per_rank"] == SD15_UNET_PARAMS_PER_RANK
    assert sd15["total"]["params_per_rank"] == SD15_PARAMS_PER_RANK
    assert sd15["total"]["modules"] == 264


@pytest.mark.parametrize(
    ("family", "expected"),
    [("sdxl", SDXL), ("flux-dev", FLUX_DEV), ("flux-dev (train_t5xxl=True)", FLUX_DEV_T5)],
)
def test_family_params_per_rank(
    table: dict[str, Any], family: str, expected: dict[str, tuple[int, int]]
) -> None:
    row = table[family]
    assert _parts(row) == expected
    assert row["total"]["params_per_rank"] == sum(p for _, p in expected.values())


def test_flux_counts_follow_the_blocks(table: dict[str, Any]) -> None:
    # 10 LoRA modules per double block, 3 per single block: the lab's 1+1-block DiT has 13
    tiny = table["flux-lab-1d1s"]["lora_unet"]
    dev = table["flux-dev"]["lora_unet"]
    assert tiny["modules"] == 13
    assert dev["modules"] == 19 * 10 + 38 * 3
