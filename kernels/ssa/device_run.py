"""One device call for issue 4's SSA and DSA targets: full-size selection checks, bench rows, SSA probe.

Checks (no interpreter, on the GPU): DSA's fused exact top-k (k = 2048, sampled threshold of step 16)
against ``torch.topk`` over the same fp32 ``lightning_indexer`` scores at T = 16K, on rows whose k-th and
(k+1)-th scores differ; SSA's Triton level scoring against its PyTorch path (same arithmetic) at T = 16K
in fp32. Then ``evals bench`` rows (ssa, ssa_select, dsa, dsa_select, sdpa_flash; B=1, H=8, D=128,
bf16; H_kv = 8 for 128K..1M and H_kv = 1 at 128K) and ``evals probe`` for ssa at 16K, 128K, 1M.
Writes checks.json, bench.json, bench_mqa.json, probe.json under $OUT and prints a summary last.
Run on the device from the repo root, with the wheels of kernels/gpu_check.sh on PYTHONPATH:
``python3 kernels/ssa/device_run.py``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from evals.bench import run_bench
from evals.probe import run_probe
from kernels.dsa import dsa_select, lightning_indexer
from kernels.ssa import select as ssa_mod

OUT = Path(os.environ.get("OUT", "/tmp/gpu_out"))
K16, K128, K1M = 16384, 131072, 1048576


def check_dsa(T: int = K16, topk: int = 2048) -> dict:
    g = torch.Generator(device="cuda").manual_seed(0)
    qi = torch.randn(1, 4, T, 64, device="cuda", generator=g).bfloat16()
    ki = torch.randn(1, T, 64, device="cuda", generator=g).bfloat16()
    w = torch.rand(1, T, 4, device="cuda", generator=g).bfloat16()
    got = dsa_select(qi, ki, w, topk).long()[0]
    s = lightning_indexer(qi, ki, w)[0]
    val, idx = s.topk(topk + 1, dim=-1)
    want = idx[:, :topk].sort(-1).values
    rows = torch.arange(T, device="cuda")
    gap = val[:, topk - 1] - val[:, topk]
    clear = (rows >= topk) & (gap > 1e-6 * val[:, 0].abs().clamp_min(1.0))
    short = rows < topk  # fewer keys than topk: every key 0..t, then -1
    ar = torch.arange(topk, device="cuda")[None]
    want_short = torch.where(ar <= rows[:, None], ar, -1)
    return {"T": T, "topk": topk, "clear_rows": int(clear.sum()), "rows_ge_topk": int((rows >= topk).sum()),
            "clear_rows_equal": int((got[clear] == want[clear]).all(-1).sum()),
            "short_rows_equal": bool(torch.equal(got[short], want_short[short]))}


def check_ssa(T: int = K16) -> dict:
    g = torch.Generator(device="cuda").manual_seed(1)
    q = torch.randn(1, 4, T, 128, device="cuda", generator=g)
    k = torch.randn(1, 2, T, 128, device="cuda", generator=g)
    got = ssa_mod.ssa_select(q, k)
    real = ssa_mod.use_triton
    ssa_mod.use_triton = lambda t: False
    try:
        want = ssa_mod.ssa_select(q, k)
    finally:
        ssa_mod.use_triton = real
    same = (got == want).all(-1)
    return {"T": T, "query_blocks": same.numel(), "equal": int(same.sum())}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    checks = {"dsa": check_dsa(), "ssa": check_ssa()}
    print("checks", json.dumps(checks), f"{time.time() - t0:.0f} s", flush=True)
    (OUT / "checks.json").write_text(json.dumps(checks, indent=1))
    bench = run_bench(["sdpa_flash", "ssa", "ssa_select", "dsa_select", "dsa"], [K128, 2 * K128, 4 * K128, K1M],
                      1, 8, 8, 128, torch.bfloat16, "cuda", 8.0, log=print)
    (OUT / "bench.json").write_text(json.dumps(bench, indent=1))
    mqa = run_bench(["sdpa_flash", "dsa_select", "dsa"], [K128], 1, 8, 1, 128, torch.bfloat16, "cuda", 8.0, log=print)
    (OUT / "bench_mqa.json").write_text(json.dumps(mqa, indent=1))
    print(f"bench done {time.time() - t0:.0f} s", flush=True)
    probe = run_probe(["ssa"], [K16, K128, K1M], 16, 1, 8, 8, 128, torch.bfloat16, "cuda", 2.0, 0, 40.0, log=print)
    (OUT / "probe.json").write_text(json.dumps(probe, indent=1))
    print(f"all done {time.time() - t0:.0f} s")
    print("checks", json.dumps(checks))
    for res in (bench, mqa):
        for r in res["results"]:
            print(f"Hkv={res['shape']['H_kv']} {r['kernel']:11s} n={r['n']:>8d} {r['ms']:10.3f} ms "
                  f"mem {r['peak_mem_gb'] or 0:6.2f} GB x sdpa_flash {r['ratio_vs_sdpa_flash'] or 0:7.2f}")
        print({k: (round(v["exponent"], 3), v["fit_range"]) for k, v in res["exponents"].items()})
    for r in probe["results"]:
        print(f"probe ssa n={r['n']:>8d} d={r['distance']:>8d} acc {r['accuracy']:.3f} ({r['trials']})")


if __name__ == "__main__":
    main()
