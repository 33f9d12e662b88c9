"""The log parser on the real SDXL and FLUX.1 runs (tests/fixtures/logs/families): start-up
phases each family prints, steps, the saved file, and the failures the CPU lab met."""

from __future__ import annotations

import pytest
from helpers import TESTS

from kohya_plan.families import FAMILIES
from kohya_plan.trainlog import events as ev
from kohya_plan.trainlog.replay import parse_log, replay

LOGS = TESTS / "fixtures" / "logs" / "families"
KNOWN_PHASES = {
    ev.PHASE_DATASET,
    ev.PHASE_ACCELERATOR,
    ev.PHASE_MODEL,
    ev.PHASE_LATENTS,
    ev.PHASE_TEXT_ENCODER,
    ev.PHASE_NETWORK,
    ev.PHASE_OPTIMIZER,
    ev.PHASE_TRAINING,
}


def merged(run: str) -> bytes:
    return (LOGS / f"{run}.stdout.txt").read_bytes() + (LOGS / f"{run}.stderr.txt").read_bytes()


def phases(run: str) -> list[str]:
    return [e.name for e in parse_log(merged(run)) if isinstance(e, ev.Phase)]


def test_every_family_start_up_line_names_a_known_phase() -> None:
    for fam in FAMILIES.values():
        for prefix, phase in fam.startup:
            assert phase in KNOWN_PHASES, (fam.name, prefix, phase)


@pytest.mark.parametrize(
    ("run", "family", "line"),
    [
        ("sdxl_bf16_unet_only", "sdxl", "U-Net converted to original U-Net"),
        ("flux_bf16_dit_only", "flux", "Building Flux model"),
        ("flux_bf16_dit_only", "flux", "Loaded T5xxl"),
    ],
)
def test_the_family_lines_are_in_the_real_logs(run: str, family: str, line: str) -> None:
    assert line in merged(run).decode()
    assert any(prefix == line for prefix, _ in FAMILIES[family].startup)


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (
            "sdxl_bf16_unet_only",
            [
                ev.PHASE_DATASET,
                ev.PHASE_ACCELERATOR,
                ev.PHASE_MODEL,
                ev.PHASE_LATENTS,
                ev.PHASE_TEXT_ENCODER,
                ev.PHASE_NETWORK,
                ev.PHASE_OPTIMIZER,
                ev.PHASE_TRAINING,
            ],
        ),
        (
            "flux_bf16_dit_only",
            [
                ev.PHASE_DATASET,
                ev.PHASE_ACCELERATOR,
                ev.PHASE_MODEL,
                ev.PHASE_LATENTS,
                ev.PHASE_TEXT_ENCODER,
                ev.PHASE_NETWORK,
                ev.PHASE_OPTIMIZER,
                ev.PHASE_TRAINING,
            ],
        ),
    ],
)
def test_start_up_phases_in_order(run: str, expected: list[str]) -> None:
    # the phase sequence with repeats folded (stdout and stderr are read one after the other,
    # so the stdout lines — network, optimizer, training — come last here)
    seen = phases(run)
    assert set(seen) == set(expected), seen
    assert seen.index(ev.PHASE_MODEL) > seen.index(ev.PHASE_ACCELERATOR)
    assert seen.index(ev.PHASE_TEXT_ENCODER) > seen.index(ev.PHASE_LATENTS)


@pytest.mark.parametrize(
    ("run", "steps", "file"),
    [
        ("sdxl_bf16_unet_only", 2, "sdxl_lora.safetensors"),
        ("flux_bf16_dit_only", 2, "flux_lora.safetensors"),
        ("flux2_train_clip_dim8", 2, "flux_lora_te.safetensors"),
    ],
)
def test_successful_family_runs(run: str, steps: int, file: str) -> None:
    state = replay(merged(run))
    assert state.total == steps
    assert state.cause is None
    assert state.startup[ev.TOTAL_STEPS] == steps
    assert [c.rsplit("/", 1)[-1] for c in state.checkpoints] == [file]


@pytest.mark.parametrize(
    ("run", "kind", "words"),
    [
        ("sdxl5_mp_fp16", "precision", "expected m1 and m2 to have the same dtype"),
        ("sdxl4_full_fp16", "precision", "_unscale_grads_"),
        ("flux_bucket_steps32", "dataset", "bucket_reso_steps is 32. it must be divisible by 64"),
        ("sdxl_bucket_steps16", "dataset", "it must be divisible by 32"),
    ],
)
def test_family_failures_are_classified(run: str, kind: str, words: str) -> None:
    cause = replay(merged(run)).cause
    assert cause is not None
    assert cause.kind == kind
    assert words in cause.message
