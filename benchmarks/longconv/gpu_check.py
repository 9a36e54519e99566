"""GPU check of the long-convolution family in one call: correctness at full size against float64, timings,
fitted exponents, and the direct-vs-FFT crossover that sets ``ops.DIRECT_MAX_TAPS``.

Run on the device (repo root): ``PYTHONPATH=$PWD python -m benchmarks.longconv.gpu_check --out $OUT``
(about a minute on an H100 after compilation); on the CPU under the interpreter at tiny sizes, to see that it
runs: ``TRITON_INTERPRET=1 python -m benchmarks.longconv.gpu_check --cpu-smoke --out /tmp/lc``.
Writes ``longconv_gpu_check.json`` under ``--out`` and prints the tables last. Uses torch, triton, numpy only.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmarks.gpu_check_utils import (
    exponent,
    print_errors,
    print_times,
    rel,
    save_result,
    timed,
)
from longctx.kernels.longconv import ops
from longctx.kernels.longconv.bench import S4D_MODES, s4d_inputs
from longctx.kernels.longconv.reference import long_conv_reference, s4d_recurrence_reference
from longctx.kernels.longconv.s4d import s4d_prefill, s4d_step


@dataclass
class Sizes:
    check_n: int          # correctness cases: sequence length (odd on purpose)
    check_c: int          # ... and channels
    fft_check_n: int      # fp32 FFT against the float64 FFT at this length
    times_n: list[int]    # timing lengths
    channels: int         # timing channels (B = 1)
    sweep_n: int          # crossover sweep length
    taps: list[int]       # crossover sweep filter lengths


GPU = Sizes(16384 + 37, 16, 1 << 20, [1 << 14, 1 << 16, 1 << 18, 1 << 20], 1024, 1 << 16,
            [4, 8, 16, 32, 64, 128, 256, 512, 1024])
SMOKE = Sizes(101, 3, 4096, [256, 512, 1024], 8, 512, [4, 16, 64])




def checks(s: Sizes, dev: str) -> dict[str, float]:
    """Max relative error (Frobenius, over the whole output) per case against float64 ground truth."""
    g = torch.Generator(device=dev).manual_seed(0)
    n, C = s.check_n, s.check_c
    u = torch.randn(1, C, n, device=dev, dtype=torch.float64, generator=g)
    D = torch.randn(C, device=dev, dtype=torch.float64, generator=g)
    out = {}
    for L, methods in ((n, ("fft",)), (64, ("fft", "direct")), (257, ("direct",))):
        k = (torch.randn(C, L, device=dev, generator=g) / L ** 0.5).double()
        for dtype in (torch.float32, torch.bfloat16):
            ref = long_conv_reference(u.to(dtype).double(), k, D)
            for method in methods:
                y = ops.long_conv(u.to(dtype), k.float(), D.float(), method=method)
                out[f"{method} L={L} {str(dtype)[6:]}"] = rel(y, ref)
    uf = torch.randn(1, 4, s.fft_check_n, device=dev, generator=g)
    kf = torch.randn(4, s.fft_check_n, device=dev, generator=g) / s.fft_check_n ** 0.5
    out[f"fft fp32 n={s.fft_check_n} vs fft fp64"] = rel(ops.long_conv(uf, kf, method="fft"),
                                                          ops.long_conv(uf.double(), kf.double(), method="fft"))
    log_dt, A, Cm, Ds = s4d_inputs(C, S4D_MODES, dev)
    y_ref, h_ref = s4d_recurrence_reference(u, log_dt.double(), A.to(torch.complex128), Cm.to(torch.complex128),
                                            Ds.double())
    cut = n - 8
    y, h = s4d_prefill(u[:, :, :cut].float(), log_dt, A, Cm, Ds)
    ys = [y]
    for t in range(cut, n):
        yt, h = s4d_step(u[:, :, t].float(), h, log_dt, A, Cm, Ds)
        ys.append(yt[:, :, None])
    out["s4d prefill+8 steps fp32 y"] = rel(torch.cat(ys, -1), y_ref)
    out["s4d prefill+8 steps fp32 state"] = rel(h, h_ref)
    return out



def timings(s: Sizes, dev: str, dtype: torch.dtype) -> tuple[dict, dict, dict]:
    """Median ms per case and n, the fitted exponents, and the peak GB allocated (inputs included; CUDA only)."""
    from longctx.kernels.longconv.bench import CASES

    table: dict[str, dict[int, float]] = {}
    peak: dict[str, dict[int, float]] = {}
    for name, case in CASES.items():
        table[name], peak[name] = {}, {}
        for n in s.times_n:
            try:
                if dev == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                fn, _ = case(n, dev, dtype, 1, s.channels // 128 or 1, 1, min(128, s.channels))
                table[name][n] = timed(fn, dev)
                if dev == "cuda":
                    peak[name][n] = torch.cuda.max_memory_allocated() / 1e9
            except torch.cuda.OutOfMemoryError:
                print(f"{name} n={n}: out of memory")
            fn = None
            if dev == "cuda":
                torch.cuda.empty_cache()
    fits = {name: exponent(sorted(t.items())) for name, t in table.items()}
    return table, fits, peak


def crossover(s: Sizes, dev: str, dtype: torch.dtype) -> dict[int, dict[str, float]]:
    u = torch.randn(1, s.channels, s.sweep_n, device=dev, dtype=dtype)
    out = {}
    for L in s.taps:
        k = torch.randn(s.channels, L, device=dev)
        out[L] = {m: timed(lambda m=m, k=k: ops.long_conv(u, k, method=m), dev) for m in ("direct", "fft")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (set TRITON_INTERPRET=1)")
    args = ap.parse_args()
    dev = "cpu" if args.cpu_smoke else "cuda"
    if dev == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --cpu-smoke")
    s, dtype = (SMOKE, torch.float32) if args.cpu_smoke else (GPU, torch.bfloat16)
    t0 = time.perf_counter()
    errs = checks(s, dev)
    table, fits, peak = timings(s, dev, dtype)
    cross = crossover(s, dev, dtype)
    faster = [L for L, r in cross.items() if r["direct"] < r["fft"]]
    result = save_result(args.out, "longconv_gpu_check.json", dev, dtype, asdict(s), errs, table, fits, t0,
                         peak_gb=peak, crossover_ms=cross, direct_faster_up_to_taps=max(faster) if faster else None,
                         DIRECT_MAX_TAPS_now=ops.DIRECT_MAX_TAPS)
    print(f"== longconv gpu_check on {result['device']}, {result['dtype']}, C={s.channels}, B=1, "
          f"{result['wall_s']:.0f} s")
    print_errors("max relative error vs float64:", errs, 34)
    print_times(table, fits, s.times_n)
    big = s.times_n[-1]
    if any(big in p for p in peak.values()):
        print(f"peak GB allocated at n={big} (inputs included): "
              + ", ".join(f"{name} {p[big]:.2f}" for name, p in peak.items() if big in p))
    print(f"crossover at n={s.sweep_n} (ms direct / fft):")
    for L, r in cross.items():
        print(f"  L={L:5d} {r['direct']:9.3f} {r['fft']:9.3f}  {'direct' if r['direct'] < r['fft'] else 'fft'}")
    print(f"direct faster up to L={result['direct_faster_up_to_taps']}; DIRECT_MAX_TAPS now {ops.DIRECT_MAX_TAPS}")
    print(f"n log n reference: the exponent of n·log2(n) over {s.times_n[0]}..{s.times_n[-1]} is "
          f"{exponent([(n, n * math.log2(n)) for n in s.times_n]):.3f}")


if __name__ == "__main__":
    os.environ.setdefault("TRITON_INTERPRET", "0")
    main()
