"""Locks released by the OS: a second taker is refused with the holder's note; nothing lingers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kohya_plan.run.locks import Busy, acquire, holder

if TYPE_CHECKING:
    from pathlib import Path


def test_a_held_lock_refuses_a_second_taker_with_the_holders_note(tmp_path: Path) -> None:
    path = tmp_path / "launch.lock"
    assert holder(path) is None  # no file yet: never locked
    lock = acquire(path, pid=123, run_dir="runs/a")
    inode = path.stat().st_ino
    with pytest.raises(Busy) as caught:
        acquire(path, pid=456)
    assert caught.value.note == {"pid": 123, "run_dir": "runs/a"}
    lock.update(run_dir="runs/b")
    assert holder(path) == {"pid": 123, "run_dir": "runs/b"}
    assert path.stat().st_ino == inode  # rewritten in place: the lock keeps its file
    lock.release()
    lock.release()  # idempotent
    assert holder(path) is None
    again = acquire(path, pid=789)
    assert holder(path) == {"pid": 789}
    again.release()


def test_a_probe_does_not_make_a_taker_fail(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    acquire(path).release()
    assert holder(path) is None
    lock = acquire(path)  # a probe just before must have let go
    lock.release()
