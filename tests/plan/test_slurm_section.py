"""[slurm]: what a person may write, and the messages for what they may get wrong."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kohya_plan.plan.slurm import SlurmSection, slurm_time_seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 5400),
        ("90:30", 5430),
        ("1:30:00", 5400),
        ("2-0", 172800),
        ("2-12", 216000),
        ("1-02:03", 93780),
        ("1-02:03:04", 93784),
        ("0", None),
        ("UNLIMITED", None),
        ("infinite", None),
    ],
)
def test_slurm_time_forms(text: str, seconds: int | None) -> None:
    assert slurm_time_seconds(text) == seconds
    assert SlurmSection(time=text, signal_before_limit=1).time == text


@pytest.mark.parametrize("text", ["1h", "1:2:3:4", "", "-5", "1.5", "2-", "1 day"])
def test_bad_time_names_the_forms(text: str) -> None:
    with pytest.raises(ValidationError, match=r"is not a Slurm time — write minutes \(90\)"):
        SlurmSection(time=text)


def test_signal_must_come_before_the_limit() -> None:
    with pytest.raises(ValidationError) as err:
        SlurmSection(time="2", signal_before_limit=120)
    text = str(err.value)
    assert "slurm.signal_before_limit (120 s) must be shorter than slurm.time (2 = 120 s)" in text
    assert SlurmSection(time="2", signal_before_limit=60).time_limit_seconds == 120


@pytest.mark.parametrize(("given", "kept"), [("64g", "64G"), ("500M", "500M"), (16000, "16000")])
def test_memory_sizes(given: str | int, kept: str) -> None:
    assert SlurmSection(mem=given).mem == kept


@pytest.mark.parametrize("given", ["16GB", "1.5G", "lots", "-1"])
def test_bad_memory_says_how_to_write_it(given: str) -> None:
    with pytest.raises(ValidationError, match="is not a Slurm memory size — write a number"):
        SlurmSection(mem=given)


def test_extra_sbatch_lines() -> None:
    s = SlurmSection(extra_sbatch=["--qos=high", "#SBATCH --mail-type=END"])
    assert s.extra_sbatch == ["--qos=high", "--mail-type=END"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--time=1:00:00", "--time is not free to set here — set slurm.time instead"),
        ("-t 60", "-t is not free to set here — set slurm.time instead"),
        ("-N2", "-N is not free to set here — set slurm.nodes instead"),
        ("--gpus=8", "set slurm.gpus_per_node instead"),
        ("--output=x.out", "--output is not free to set here — kohya-plan sets it in the job"),
        ("--array=0-3", "--array is not free to set here — kohya-plan sets it"),
        ("qos=high", "is not an sbatch option"),
        ("--comment='open", "has an unclosed quote"),
    ],
)
def test_extra_sbatch_refuses_what_the_script_sets(line: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SlurmSection(extra_sbatch=[line])


def test_names_and_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="is not a Slurm name"):
        SlurmSection(partition="gpu queue")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SlurmSection.model_validate({"partiton": "gpu"})
    with pytest.raises(ValidationError, match="gpus_per_node is 0"):
        SlurmSection(gpus_per_node=0, gpu_type="a100")
    with pytest.raises(ValidationError, match="greater than 0"):
        SlurmSection(nodes=0)


def test_frozen() -> None:
    s = SlurmSection()
    with pytest.raises(ValidationError, match="frozen"):
        s.nodes = 2  # type: ignore[misc]
