"""Peak memory of kohya-plan's child processes while something runs (for `selftest`).

A background thread adds up the resident memory of every descendant of this process every
half second, and, when asked, the GPU memory in use (nvidia-smi, all processes, less what was
in use at the start). A sample can miss a short spike; the numbers are a floor.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from types import TracebackType

_INTERVAL_S = 0.5
_GPU_EVERY = 4  # nvidia-smi every 4th sample (2 s): it costs more than reading /proc


class PeakUsage:
    """`with PeakUsage(gpu=True) as peak: ...` then peak.rss_bytes, peak.gpu_bytes."""

    def __init__(self, *, gpu: bool = False, interval_s: float = _INTERVAL_S) -> None:
        self.rss_bytes = 0
        self.gpu_bytes: int | None = None
        self._gpu = gpu
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="peak-usage", daemon=True)
        self._gpu_base: int | None = None

    def __enter__(self) -> PeakUsage:
        if self._gpu:
            self._gpu_base = _gpu_used()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        me = psutil.Process()
        count = 0
        while not self._stop.wait(self._interval):
            total = 0
            with contextlib.suppress(psutil.Error):
                for child in me.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        total += child.memory_info().rss
            self.rss_bytes = max(self.rss_bytes, total)
            count += 1
            if self._gpu_base is not None and count % _GPU_EVERY == 0:
                used = _gpu_used()
                if used is not None:
                    delta = max(0, used - self._gpu_base)
                    self.gpu_bytes = max(self.gpu_bytes or 0, delta)


def _gpu_used() -> int | None:
    """Memory in use on all GPUs, in bytes (nvidia-smi), or None."""
    from kohya_plan.run.capture import capture

    try:
        status, out = capture(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"], 5.0
        )
    except (OSError, TimeoutError):
        return None
    if status != 0:
        return None
    try:
        return sum(int(float(x)) for x in out.split()) << 20
    except ValueError:
        return None
