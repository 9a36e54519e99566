"""What every family's ``gpu_check.py`` script shares: relative error against a float64 truth, a
median time per call, each launched kernel's GPU time, and the fitted exponent of time against n."""
from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative Frobenius error of ``a`` against ``b`` (complex tensors as pairs of reals)."""
    if torch.is_complex(b):
        a, b = torch.view_as_real(a), torch.view_as_real(b)
    return float((a.double() - b.double()).norm() / b.double().norm())


def timed(fn: Callable[[], object], device: str, budget_s: float = 0.5) -> float:
    """Median ms after a warm-up call (which compiles): CUDA events on a GPU, wall clock on the CPU;
    at least 3 calls, at most 20, for about ``budget_s``."""
    fn()
    times: list[float] = []
    budget = time.perf_counter() + budget_s
    while len(times) < 3 or (time.perf_counter() < budget and len(times) < 20):
        if device == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def kernel_ms(fn: Callable[[], object], calls: int = 5) -> dict:
    """GPU time per call of each kernel ``fn`` launches (PyTorch's profiler), ms, by kernel name (70
    characters); ``{"error": ...}`` where profiling fails: the profiler is a diagnosis, not a result."""
    try:
        from torch.profiler import ProfilerActivity, profile

        fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(calls):
                fn()
            torch.cuda.synchronize()
        return {e.key[:70]: round(e.device_time_total / calls / 1e3, 4) for e in prof.key_averages()
                if e.device_time_total > 0}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"[:200]}


def exponent(points: list[tuple[int, float]]) -> float | None:
    """Slope of log(ms) against log(n) by least squares; None with fewer than two points."""
    if len(points) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(x, y, 1)[0])


def print_times(table: dict[str, dict[int, float]], fits: dict[str, float | None], ns: list[int]) -> None:
    """One row per case: median ms at each n (``-`` where not run) and the fitted exponent."""
    print("median ms: " + " ".join(f"{n:>9d}" for n in ns) + "  exponent")
    for name, t in table.items():
        cells = " ".join(f"{t[n]:9.3f}" if n in t else f"{'-':>9s}" for n in ns)
        fit = fits[name]
        print(f"  {name:17s} {cells}  {'-' if fit is None else format(fit, '.3f')}")


def save_result(out: Path, filename: str, device: str, dtype: torch.dtype, sizes: dict, errors: dict,
                table: dict, fits: dict, start: float, **extra: object) -> dict:
    """Write a check's JSON to ``out/filename`` and return it: the device, torch, timing dtype, sizes,
    relative errors, median ms, exponents, then ``extra``, and the wall seconds since ``start``."""
    result = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu (interpreter)",
              "torch": torch.__version__, "dtype": str(dtype).removeprefix("torch."), "sizes": sizes,
              "max_rel_err": errors, "ms": table, "exponent": fits, **extra, "wall_s": time.perf_counter() - start}
    out.mkdir(parents=True, exist_ok=True)
    (out / filename).write_text(json.dumps(result, indent=1))
    return result


def print_errors(title: str, errors: dict[str, float], width: int) -> None:
    """The relative errors, one per line under ``title``."""
    print(title)
    for name, e in errors.items():
        print(f"  {name:{width}s} {e:.2e}")
