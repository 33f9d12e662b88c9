"""Real logs of runs with several processes and machines (fixtures/logs/scale, recorded through
`kohya-plan launch` on the tiny SD1.5 model): what the ranks printed, merged without double
counting; which rank died and how; a machine that never joined; a machine other than 0."""

from __future__ import annotations

import random

import pytest
from helpers import TESTS

from kohya_plan.summary import summarize
from kohya_plan.trainlog.events import Failure
from kohya_plan.trainlog.records import LogParser
from kohya_plan.trainlog.replay import parse_log, replay

LOGS = TESTS / "fixtures" / "logs" / "scale"


def _log(name: str) -> bytes:
    return (LOGS / f"{name}.log").read_bytes()


def _summary(name: str, *, exit_status: int, machine_rank: int | None = None, **more: object):
    return summarize(
        replay(_log(name)),
        exit_status=exit_status,
        wall_s=1.0,
        stop_reason=None,
        escalation=None,
        files=(),
        tensorboard={},
        machine_rank=machine_rank,
        **more,  # type: ignore[arg-type]
    )


def test_every_fixture_is_listed() -> None:
    assert sorted(p.stem for p in LOGS.glob("*.log")) == sorted(CAUSES)


CAUSES: dict[str, tuple[str | None, int | None, str]] = {
    "two_processes": (None, None, ""),
    "two_processes_ctrl_c": ("interrupted", 0, "KeyboardInterrupt"),
    "deepspeed_zero2": (None, None, ""),
    "two_machines.machine0": (None, None, ""),
    "two_machines.machine1": (None, None, ""),
    "rank1_killed_training": (
        "rank_died",
        1,
        "rank 1 (local rank 1 on localhost) was killed by SIGKILL (exit code -9)",
    ),
    "rank1_killed_loading": (
        "rank_died",
        1,
        "rank 1 (local rank 1 on localhost) was killed by SIGKILL (exit code -9)",
    ),
    "two_machines_node1_killed.machine0": ("peer_lost", 0, "Connection closed by peer"),
    "two_machines_node1_killed.machine1": (
        "rank_died",
        1,
        "rank 1 (local rank 0 on localhost) was killed by SIGKILL (exit code -9)",
    ),
    "machine1_never_started.machine0": (
        "rendezvous_timeout",
        None,
        "Timed out after 21 seconds waiting for clients. 1/2 clients joined.",
    ),
    "machine0_never_started.machine1": (
        "rendezvous_timeout",
        None,
        "The client socket has timed out after 20000ms while trying to connect",
    ),
}


@pytest.mark.parametrize("name", sorted(CAUSES))
def test_the_cause_names_the_rank_and_how_it_ended(name: str) -> None:
    kind, rank, text = CAUSES[name]
    state = replay(_log(name))
    cause = state.cause
    if kind is None:
        assert state.failures == []
        return
    assert cause is not None
    assert (cause.kind, cause.rank) == (kind, rank)
    assert text in cause.message or any(text in line for line in cause.detail_lines)


def test_a_killed_rank_comes_with_torchruns_root_cause_entry() -> None:
    cause = replay(_log("rank1_killed_training")).cause
    assert cause is not None
    assert cause.detail_lines[0] == "Root Cause (first observed failure):"
    assert "traceback : Signal 9 (SIGKILL) received by PID 7383" in cause.detail_lines
    # rank 0's own end (it lost rank 1 while loading) is a consequence, not the cause
    loading = replay(_log("rank1_killed_loading"))
    assert [(f.kind, f.rank) for f in loading.failures] == [("peer_lost", 0), ("rank_died", 1)]
    assert loading.cause is not None
    assert loading.cause.kind == "rank_died"


def test_the_surviving_machine_shows_its_own_last_words() -> None:
    state = replay(_log("two_machines_node1_killed.machine0"))
    # torchrun's entry on machine 0 names rank 0 (exit 1): rank 0's own error explains it
    died = [f for f in state.failures if f.kind == "rank_died"]
    assert [(f.rank, f.message) for f in died] == [
        (0, "rank 0 (local rank 0 on localhost) exited with status 1")
    ]
    assert state.cause is not None
    assert state.cause.message.startswith("rank 0: RuntimeError: ")


def test_two_processes_print_once_what_both_log() -> None:
    # both ranks log the dataset, the warnings and each sampling round; one bar, one summary
    state = replay(_log("two_processes"))
    assert state.sample_steps == [4, 8]
    assert [w.kind for w in state.warnings] == ["no_reg_images"]
    assert len(state.image_folders) == 1
    assert state.startup["batches_per_epoch"] == 4
    assert (state.step, state.total, state.epochs) == (8, 8, 2)
    assert sorted(state.losses) == list(range(1, 9))
    summary = _summary("two_processes", exit_status=0, processes=2)
    assert summary.outcome == "succeeded"
    assert summary.notes[0].startswith("2 processes: only rank 0 writes the LoRA files")
    assert "prompt k by rank k mod 2" in summary.notes[1]


def test_a_machine_other_than_0_succeeds_without_saving() -> None:
    # machine 1 trains all steps, exits 0 and never prints "model saved." (machine 0 saves)
    as_one = _summary("two_machines.machine1", exit_status=0)
    assert as_one.outcome == "failed"
    assert as_one.cause is not None
    assert as_one.cause.message == "the trainer exited without saving a model"
    machine = _summary(
        "two_machines.machine1", exit_status=0, machine_rank=1, processes=2, machines=2
    )
    assert machine.outcome == "succeeded"
    assert machine.steps_done == 8
    assert machine.notes == (
        "this is machine 1 of 2 (1 process(es), ranks 1-1): the LoRA files, states, "
        "TensorBoard logs and rank 0's samples are written by machine 0",
    )
    zero = _summary("two_machines.machine0", exit_status=0, machine_rank=0, processes=2, machines=2)
    assert zero.outcome == "succeeded"
    assert "on 2 machines" in zero.notes[0]


def test_deepspeed_zero2_run_reads_as_any_other() -> None:
    state = replay(_log("deepspeed_zero2"))
    assert (state.step, state.total) == (3, 3)
    assert state.saw_model_saved


@pytest.mark.parametrize("name", sorted(CAUSES))
def test_chunking_does_not_change_the_events(name: str) -> None:
    data = _log(name)
    whole = parse_log(data)
    rng = random.Random(name)
    parser = LogParser()
    pieces: list[object] = []
    i = 0
    while i < len(data):
        n = rng.randint(1, 4096)
        pieces += parser.feed(data[i : i + n])
        i += n
    pieces += parser.finish()
    assert [e for e in pieces if isinstance(e, Failure)] == [
        e for e in whole if isinstance(e, Failure)
    ]
