"""Will a bench case fit on this CPU? An estimate from two small calibration sizes, before the real one runs.

On the CPU every kernel runs its float64 PyTorch reference, and several of those hold the n x n
scores: ``flash_dense`` at n=16k with 8 heads needs about 17 GB for one score matrix. ``calibrate``
runs the case at two small sizes, measures the wall time and the growth of the process's peak
resident memory (Linux ``/proc/self/clear_refs`` resets the peak, ``VmHWM`` reads it), fits the
log-log slope of each (clamped to [1, 2]: no case is cheaper than linear or dearer than quadratic)
and extrapolates to n. ``refusal`` turns that into one line when the memory would not fit in what
the machine has available (``MemAvailable``) or the time would exceed the limit.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CALIBRATION = (256, 512)
HEADROOM = 0.8  # of MemAvailable: the rest is left to the system and the Python process itself


@dataclass(frozen=True)
class Estimate:
    seconds: float      # one call at n
    bytes: float | None  # peak memory growth of one call at n; None where /proc cannot tell


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def available_bytes() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024.0
    except OSError:
        return None
    return None


def measure(fn: Callable[[], object]) -> tuple[float, float | None]:
    """Seconds of one call of ``fn`` and the peak resident memory it added (None if unmeasurable)."""
    fn()  # warm-up: lazy imports and allocator pools do not count as the case's memory
    try:
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        before = _status_kb("VmRSS")
    except OSError:
        before = None
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    peak = _status_kb("VmHWM")
    return seconds, (max(peak - before, 0) * 1024.0 if before is not None and peak is not None else None)


def _extrapolate(small: tuple[int, float], large: tuple[int, float], n: int) -> float:
    (n0, y0), (n1, y1) = small, large
    slope = math.log(max(y1, 1e-9) / max(y0, 1e-9)) / math.log(n1 / n0) if y0 > 0 and y1 > 0 else 2.0
    return max(y1, 1e-9) * (n / n1) ** min(max(slope, 1.0), 2.0)


@dataclass(frozen=True)
class Calibration:
    """Time and peak-memory growth of one call at each ``CALIBRATION`` size; ``at(n)`` extrapolates."""

    points: list[tuple[int, float, float | None]]  # (n, seconds, bytes or None)

    def at(self, n: int) -> Estimate:
        (n0, t0, m0), (n1, t1, m1) = self.points
        memory = None if m0 is None or m1 is None else _extrapolate((n0, max(m0, 1.0)), (n1, max(m1, 1.0)), n)
        return Estimate(_extrapolate((n0, t0), (n1, t1), n), memory)


def calibrate(build: Callable[[int], Callable[[], object]]) -> Calibration:
    """Run ``build(size)()`` at the ``CALIBRATION`` sizes and keep what each call cost."""
    points = []
    for size in CALIBRATION:
        fn = build(size)
        points.append((size, *measure(fn)))
        fn = None
    return Calibration(points)


def refusal(name: str, n_text: str, est: Estimate, max_seconds: float) -> str | None:
    """One line saying why ``name`` at ``n_text`` will not run here, or None when it fits."""
    free = available_bytes()
    if est.bytes is not None and free is not None and est.bytes > HEADROOM * free:
        return (f"{name} n={n_text}: refused on the CPU: needs about {est.bytes / 2**30:.1f} GB, "
                f"{free / 2**30:.1f} GB available (smaller --n, or a GPU)")
    if est.seconds > max_seconds:
        return (f"{name} n={n_text}: refused on the CPU: about {est.seconds:,.0f} s per call, over --max-seconds "
                f"{max_seconds:g} (smaller --n, a larger --max-seconds, or a GPU)")
    return None
