"""One device call for SSA v3 (two-basis bounds): full-size selection check, bench rows, probe.

Checks (no interpreter): the Triton level scoring against the PyTorch path (same arithmetic), fp32,
H=4, H_kv=2: at T = 16K with top_cap 16 (three levels: both bases and the query truncation are used) and
at T = 128K with the defaults. Bench (``evals bench`` machinery; B=1, H=8, H_kv=8, D=128, bf16): sdpa_flash, ssa,
ssa_select at 128K, 256K, 512K, 1M. Probe (``evals probe``): ssa at 16K, 128K, 1M, strength 2, 16 needles
per head (128 per point). Writes checks.json, bench.json, probe.json under argv[1] (else $OUT, else
/tmp/gpu_out) and prints a short table last. Run from the repo root: ``bash benchmarks/ssa/device_run_v3.sh``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

from longctx.evals.bench import run_bench
from longctx.evals.probe import run_probe
from longctx.kernels.ssa import select as ssa_mod

K16, K128, K1M = 16384, 131072, 1048576


def check_select(T: int, device: str = "cuda", **kw) -> dict:
    """Query blocks whose Triton selection equals the PyTorch path's (fp32; ``kw`` to ``ssa_select``)."""
    g = torch.Generator(device=device).manual_seed(1)
    q = torch.randn(1, 4, T, 128, device=device, generator=g)
    k = torch.randn(1, 2, T, 128, device=device, generator=g)
    got = ssa_mod.ssa_select(q, k, **kw)
    real = ssa_mod.use_triton
    ssa_mod.use_triton = lambda t: False
    try:
        want = ssa_mod.ssa_select(q, k, **kw)
    finally:
        ssa_mod.use_triton = real
    same = (got == want).all(-1)
    return {"T": T, **kw, "query_blocks": same.numel(), "equal": int(same.sum())}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    checks = {"ssa_16K_3_levels": check_select(K16, top_cap=16, top_beam=12), "ssa_128K": check_select(K128)}
    print("checks", json.dumps(checks), f"{time.time() - t0:.0f} s", flush=True)
    (out / "checks.json").write_text(json.dumps(checks, indent=1))
    bench = run_bench(["sdpa_flash", "ssa", "ssa_select"], [K128, 2 * K128, 4 * K128, K1M], 1, 8, 8, 128,
                      torch.bfloat16, "cuda", 8.0, log=print)
    (out / "bench.json").write_text(json.dumps(bench, indent=1))
    print(f"bench done {time.time() - t0:.0f} s", flush=True)
    probe = run_probe(["ssa"], [K16, K128, K1M], 16, 1, 8, 8, 128, torch.bfloat16, "cuda", 2.0, 0, 60.0, log=print)
    (out / "probe.json").write_text(json.dumps(probe, indent=1))
    print(f"all done {time.time() - t0:.0f} s")
    print("checks", json.dumps(checks))
    for r in bench["results"]:
        print(f"{r['kernel']:11s} n={r['n']:>8d} {r['ms']:10.3f} ms mem {r['peak_mem_gb'] or 0:6.2f} GB "
              f"x sdpa_flash {r['ratio_vs_sdpa_flash'] or 0:7.2f}")
    print({k: (round(v["exponent"], 3), v["fit_range"]) for k, v in bench["exponents"].items()})
    for n in (K16, K128, K1M):
        rows = [r for r in probe["results"] if r["n"] == n]
        print(f"probe ssa n={n:>8d} " + " ".join(f"d={r['distance']}:{r['accuracy']:.3f}" for r in rows))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "/tmp/gpu_out")))
