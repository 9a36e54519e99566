"""GPU check of the Performer family in one call: correctness at full size against the float64 definition
(prefill, state, decode after a prefill), median times at growing n with the fitted exponent, and where the
time goes (feature maps, Triton and PyTorch, vs the chunked recurrence).

Run on the device (repo root): ``PYTHONPATH=$PWD python -m benchmarks.performer.gpu_check --out $OUT``
(well under a minute on an H100 after compilation); on the CPU under the interpreter at tiny sizes, to see
that it runs: ``python -m benchmarks.performer.gpu_check --cpu-smoke --out /tmp/pf``.
Writes ``performer_gpu_check.json`` under ``--out`` and prints the tables last. Uses torch, triton, numpy only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from benchmarks.gpu_check_utils import (
    exponent,
    print_errors,
    print_times,
    rel,
    save_result,
    timed,
)


@dataclass
class Sizes:
    check_n: int          # correctness: sequence length (odd on purpose)
    heads: int            # H (q) and H_k = H / 2 (grouped heads)
    D: int                # head dim of q, k and v
    m: int                # random features
    decode: int           # tokens decoded one at a time after the prefill
    times_n: list[int]    # timing lengths (B = 1, H = heads, H_k = heads)
    sdpa_max_n: int       # time SDPA flash up to this n


GPU = Sizes(4096 + 37, 8, 128, 256, 16, [1 << 14, 1 << 16, 1 << 18, 1 << 20], 1 << 18)
SMOKE = Sizes(101, 2, 16, 24, 4, [256, 512, 1024], 1024)




def checks(s: Sizes, dev: str, low: torch.dtype) -> dict[str, float]:
    """Relative error (Frobenius, whole tensor) per case against the float64 token-by-token definition, in
    float32 and in ``low`` precision (bf16 on the GPU; fp16 under the interpreter, whose bf16 path gives wrong
    numbers for kernels.linear's chunk kernels too)."""
    from longctx.kernels.performer import favor_attention, favor_step, orthogonal_features
    from longctx.kernels.performer.reference import favor_reference

    g = torch.Generator(device=dev).manual_seed(0)
    n, H, D = s.check_n, s.heads, s.D
    q = torch.randn(1, H, n, D, device=dev, dtype=torch.float64, generator=g)
    k = torch.randn(1, H // 2, n, D, device=dev, dtype=torch.float64, generator=g)
    v = torch.randn(1, H // 2, n, D, device=dev, dtype=torch.float64, generator=g)
    W = orthogonal_features(s.m, D, seed=1, device=dev)
    out = {}
    cut = n - s.decode
    for dtype in (torch.float32, low):
        qd, kd, vd = (x.to(dtype) for x in (q, k, v))
        o_ref, (S, z) = favor_reference(qd.double(), kd.double(), vd.double(), W.double(), D ** -0.5)
        o, st = favor_attention(qd, kd, vd, W, output_final_state=True)
        kv = st.kv.double() * st.shift.double().repeat_interleave(2, 1).exp()[..., None, None]
        name = str(dtype)[6:]
        out[f"prefill {name} o"] = rel(o, o_ref)
        out[f"prefill {name} S"] = rel(kv[..., :-1], S)
        out[f"prefill {name} z"] = rel(kv[..., -1], z)
        o1, st = favor_attention(qd[:, :, :cut], kd[:, :, :cut], vd[:, :, :cut], W, output_final_state=True)
        outs = [o1]
        for t in range(cut, n):
            y, st = favor_step(qd[:, :, t], kd[:, :, t], vd[:, :, t], W, st)
            outs.append(y[:, :, None])
        out[f"prefill+{s.decode} steps {name} o"] = rel(torch.cat(outs, 2), o_ref)
    sm = torch.nn.functional.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                                                          is_causal=True)
    out[f"fp32 vs exact softmax (m={s.m}; an estimate, not a bug)"] = rel(
        favor_attention(q.float(), k.float(), v.float(), W)[0], sm)
    return out



def timings(s: Sizes, dev: str, dtype: torch.dtype) -> tuple[dict, dict, dict]:
    """Median ms per case and n: the op, its feature maps alone (the Triton kernel the op uses, and the PyTorch
    form), the chunked recurrence alone, SDPA flash; the fitted exponents; the op's peak GB allocated per n
    (q, k, v included; CUDA only)."""
    from longctx.kernels.linear import gated_linear_attention
    from longctx.kernels.performer import favor_attention, orthogonal_features
    from longctx.kernels.performer.features import favor_inputs
    from longctx.kernels.performer.triton_features import triton_features

    table: dict[str, dict[int, float]] = {"performer": {}, "features triton": {}, "features torch": {},
                                          "recurrence only": {}, "sdpa_flash": {}}
    peak: dict[int, float] = {}
    H, D = s.heads, s.D
    W = orthogonal_features(s.m, D, seed=0, device=dev)
    for n in s.times_n:
        try:
            q, k, v = (torch.randn(1, H, n, D, device=dev, dtype=dtype) for _ in range(3))
            if dev == "cuda":
                torch.cuda.reset_peak_memory_stats()
            table["performer"][n] = timed(partial(favor_attention, q, k, v, W), dev)
            if dev == "cuda":
                peak[n] = torch.cuda.max_memory_allocated() / 1e9
            table["features triton"][n] = timed(partial(favor_inputs, q, k, v, W, D ** -0.5, None, triton_features),
                                                dev)
            table["features torch"][n] = timed(partial(favor_inputs, q, k, v, W, D ** -0.5, None), dev)
            fq, fk, vw, gate, _ = favor_inputs(q, k, v, W, D ** -0.5, None, triton_features)
            fq, fk, vw = (x.to(dtype) for x in (fq, fk, vw))
            table["recurrence only"][n] = timed(partial(gated_linear_attention, fq, fk, vw, gate, scale=1.0), dev)
            del fq, fk, vw, gate
            if n <= s.sdpa_max_n:   # pinned to the flash backend on the GPU (unpinned, PyTorch picked a faster one)
                flash = sdpa_kernel(SDPBackend.FLASH_ATTENTION) if dev == "cuda" else contextlib.nullcontext()
                with flash:
                    table["sdpa_flash"][n] = timed(
                        partial(torch.nn.functional.scaled_dot_product_attention, q, k, v, is_causal=True), dev)
        except torch.cuda.OutOfMemoryError:
            print(f"n={n}: out of memory")
        q = k = v = None
        if dev == "cuda":
            torch.cuda.empty_cache()
    fits = {name: exponent(sorted(t.items())) for name, t in table.items()}
    return table, fits, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU under TRITON_INTERPRET=1")
    args = ap.parse_args()
    dev = "cpu" if args.cpu_smoke else "cuda"
    os.environ["TRITON_INTERPRET"] = "1" if args.cpu_smoke else "0"  # before triton sees a kernel
    if dev == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --cpu-smoke")
    s, dtype = (SMOKE, torch.float32) if args.cpu_smoke else (GPU, torch.bfloat16)
    t0 = time.perf_counter()
    errs = checks(s, dev, torch.float16 if args.cpu_smoke else torch.bfloat16)
    table, fits, peak = timings(s, dev, dtype)
    result = save_result(args.out, "performer_gpu_check.json", dev, dtype, asdict(s), errs, table, fits, t0,
                         performer_peak_gb=peak)
    print(f"== performer gpu_check on {result['device']}, timings {result['dtype']}, B=1 H={s.heads} D={s.D} "
          f"m={s.m}, {result['wall_s']:.0f} s")
    print_errors("relative error vs float64 definition (H_k = H/2):", errs, 52)
    print_times(table, fits, s.times_n)
    if peak:
        print("performer op peak GB allocated (q, k, v included): "
              + ", ".join(f"n={n} {gb:.2f}" for n, gb in peak.items()))


if __name__ == "__main__":
    main()
