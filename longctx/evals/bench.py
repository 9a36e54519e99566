"""``evals bench``: time every kernel family at growing n, against PyTorch SDPA's flash and cuDNN backends.

For each kernel and n: median time (CUDA events after a warm-up on a GPU, wall clock on the CPU),
TFLOP/s on the FLOPs the method actually needs, peak memory, the ratio of SDPA's time to the kernel's,
and per kernel the fitted exponent of time against n (least squares on log-log over the largest sizes).
Cases come from ``kernels/<family>/bench.py`` (``CASES``). Run: ``evals bench --n 16k-1m --out b.json``.
"""
from __future__ import annotations

import importlib
import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from rich.console import Console
from rich.table import Table

from longctx.evals import cpu_budget
from longctx.evals.ctx import fmt_ctx
from longctx.evals.errors import EvalError

FAMILIES = ["flash", "dsa", "ssa", "hyper", "linear", "ssd", "scan", "longconv", "performer"]
REFERENCES = ["sdpa_flash", "sdpa_cudnn"]
DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
          "fp32": torch.float32, "float32": torch.float32}


@dataclass
class Row:
    kernel: str
    n: int
    ms: float
    tflops: float | None
    peak_mem_gb: float | None
    ratio_vs_sdpa_flash: float | None = None
    ratio_vs_cudnn: float | None = None


def collect_cases() -> dict[str, Callable]:
    """Every ``CASES`` entry of ``kernels/<family>/bench.py`` that exists; a missing module is skipped."""
    cases: dict[str, Callable] = {}
    for fam in FAMILIES:
        try:
            mod = importlib.import_module(f"longctx.kernels.{fam}.bench")
        except ImportError as e:
            if e.name not in (f"longctx.kernels.{fam}", f"longctx.kernels.{fam}.bench"):
                warnings.warn(f"longctx.kernels.{fam}.bench skipped: {e}", stacklevel=2)
            continue
        cases.update(mod.CASES)
    return cases


def _sdpa_case(backend_name: str) -> Callable:
    def case(n, device, dtype, B, H, H_kv, D):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backend = getattr(SDPBackend, backend_name)
        q, k, v = (torch.randn(B, h, n, D, device=device, dtype=dtype) for h in (H, H_kv, H_kv))

        def run():
            with sdpa_kernel([backend]):
                return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                        enable_gqa=H != H_kv)

        return run, 4.0 * B * H * D * n * (n + 1) / 2

    return case


REFERENCE_CASES = {"sdpa_flash": _sdpa_case("FLASH_ATTENTION"), "sdpa_cudnn": _sdpa_case("CUDNN_ATTENTION")}


def time_call(fn: Callable, device: str, budget_s: float = 1.0, max_reps: int = 20) -> float:
    """Median milliseconds of ``fn()`` after one warm-up call; repetitions fill about ``budget_s``."""
    if device == "cuda":
        fn()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        first = start.elapsed_time(end)
        if first > 300:  # long calls: one warm-up and one timed call are enough
            return first
        reps = max(1, min(max_reps, int(budget_s * 1000 / max(first, 1e-3))))
        times = []
        for _ in range(reps):
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median([first, *times])
    fn()
    times = []
    t_end = time.perf_counter() + budget_s
    while len(times) < 3 or (time.perf_counter() < t_end and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def fit_exponent(points: list[tuple[int, float]]) -> tuple[float, list[int]] | None:
    """Slope of log(ms) on log(n) over the sizes within 8x of the largest (at least two)."""
    points = sorted(points)
    if len(points) < 2:
        return None
    top = points[-1][0]
    use = [p for p in points if p[0] * 8 >= top]
    use = use if len(use) >= 2 else points[-2:]
    xs, ys = [math.log(n) for n, _ in use], [math.log(ms) for _, ms in use]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return slope, [use[0][0], use[-1][0]]


def run_bench(kernels: list[str], ns: list[int], B: int, H: int, H_kv: int, D: int, dtype: torch.dtype,
              device: str, max_seconds: float, log: Callable[[str], None] = lambda s: None) -> dict:
    """Time each kernel at each n; skip an n where the last time, scaled by (n / n_prev)^2, exceeds max_seconds."""
    cases = {**collect_cases(), **REFERENCE_CASES}
    rows: list[Row] = []
    refused: list[str] = []
    for name in kernels:
        last: tuple[int, float] | None = None
        calibrated: cpu_budget.Calibration | None = None
        for n in ns:
            if last and last[1] / 1000 * (n / last[0]) ** 2 > max_seconds:
                log(f"{name} n={fmt_ctx(n)}: skipped, predicted over {max_seconds:g} s")
                continue
            if name in REFERENCE_CASES and device != "cuda":
                continue
            if device == "cpu" and n > cpu_budget.CALIBRATION[-1]:  # the OOM killer gives no message: estimate first
                build = lambda size, name=name: cases[name](size, device, dtype, B, H, H_kv, D)[0]  # noqa: E731
                calibrated = calibrated or cpu_budget.calibrate(build)
                if (why := cpu_budget.refusal(name, fmt_ctx(n), calibrated.at(n), max_seconds)) is not None:
                    refused.append(why)
                    continue
            try:
                if device == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                fn, flops = cases[name](n, device, dtype, B, H, H_kv, D)
                ms = time_call(fn, device)
            except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
                log(f"{name} n={fmt_ctx(n)}: could not run ({str(e).splitlines()[0][:120]})")
                fn = None
                continue
            finally:
                fn = None
            mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
            rows.append(Row(name, n, ms, flops / ms / 1e9 if flops else None, mem))
            last = (n, ms)
            log(f"{name} n={fmt_ctx(n)}: {ms:.3f} ms")
    if refused and not rows:
        raise EvalError(f"nothing to time: {refused[0]}" + (f" (and {len(refused) - 1} more like it)" if len(refused) > 1 else ""))
    for why in refused:
        log(why)
    ref = {(r.kernel, r.n): r.ms for r in rows if r.kernel in REFERENCES}
    for r in rows:
        if ("sdpa_flash", r.n) in ref:
            r.ratio_vs_sdpa_flash = ref[("sdpa_flash", r.n)] / r.ms
        if ("sdpa_cudnn", r.n) in ref:
            r.ratio_vs_cudnn = ref[("sdpa_cudnn", r.n)] / r.ms
    exponents = {}
    for name in kernels:
        fit = fit_exponent([(r.n, r.ms) for r in rows if r.kernel == name])
        if fit:
            exponents[name] = {"exponent": fit[0], "fit_range": fit[1]}
    dev_name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return {"kind": "bench", "device": dev_name, "dtype": str(dtype).removeprefix("torch."),
            "shape": {"B": B, "H": H, "H_kv": H_kv, "D": D}, "results": [asdict(r) for r in rows],
            "exponents": exponents}


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_table(result: dict, console: Console) -> None:
    table = Table(title=f"bench on {result['device']} ({result['dtype']}, {result['shape']})")
    for col in ("kernel", "n", "ms", "TFLOP/s", "peak GB", "x sdpa_flash", "x cudnn", "exponent"):
        table.add_column(col, justify="left" if col == "kernel" else "right")
    for r in result["results"]:
        exp = result["exponents"].get(r["kernel"])
        table.add_row(r["kernel"], fmt_ctx(r["n"]), f"{r['ms']:.3f}", _fmt(r["tflops"], ".3g"),
                      _fmt(r["peak_mem_gb"], ".2f"), _fmt(r["ratio_vs_sdpa_flash"], ".2f"),
                      _fmt(r["ratio_vs_cudnn"], ".2f"), _fmt(exp and exp["exponent"], ".2f"))
    console.print(table)


def parse_kernels(text: str | None, available: list[str]) -> list[str]:
    if not text:
        return available
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in names if x not in available]
    if unknown or not names:
        raise EvalError(f"unknown kernel(s) {', '.join(unknown) or text!r}: choose from {', '.join(available)}")
    return names


def parse_dtype(text: str) -> torch.dtype:
    if text.lower() not in DTYPES:
        raise EvalError(f"unknown dtype {text!r}: choose from {', '.join(DTYPES)}")
    return DTYPES[text.lower()]


def check_shape(B: int, H: int, H_kv: int | None, D: int) -> int:
    H_kv = H if H_kv is None else H_kv
    if B < 1 or H < 1 or H_kv < 1 or H % H_kv:
        raise EvalError(f"bad shape B={B}, H={H}, H_kv={H_kv}: all positive and H_kv must divide H")
    if D not in (16, 32, 64, 128, 256):
        raise EvalError(f"bad head dim D={D}: choose 16, 32, 64, 128 or 256")
    return H_kv
