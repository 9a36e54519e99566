"""One device call: needle recall against strength for dense, SSA settings and the other query-key kernels,
and SSA's speed against SDPA flash and cuDNN in the same run.

1. Check: the Triton selection equals the PyTorch path (fp32, 16K), with the leaf rescoring pass (``exact``)
   and with per-level truncation and ``qnorm``.
2. Timings (B=1, H=8, H_kv=8, D=128, bf16; ``evals bench``'s ``time_call``): every SSA setting at 128K,
   256K, 512K, 1M (fitted exponent over those), SDPA flash and cuDNN at 128K and 1M.
3. Probe (``evals probe``'s ``run_probe``): strengths 1, 1.25, 1.5, 1.75, 2; distances 100, 1K, 10K, 100K,
   n/2; 16 needles per head per distance (128 per point); flash_dense and every SSA setting at 128K and 1M,
   then dsa, hyper, flash_window, performer at 128K and at 1M while time is left.
Writes sweep.json under argv[1] (else $OUT) after every step; prints a short table last. ``--settings a,b``
runs only those SSA settings. CPU dry run: ``SWEEP_SMALL=1 TRITON_INTERPRET=1``.
Run from the repo root: ``python -m benchmarks.ssa.strength_sweep $OUT --settings ssa,ssa_q``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from benchmarks.ssa.device_run_v3 import check_select
from longctx.evals.bench import REFERENCE_CASES, fit_exponent, time_call
from longctx.evals.probe import _kernels, run_probe
from longctx.kernels.flash import block_sparse_attention
from longctx.kernels.ssa import select as ssa_mod

# SWEEP_SMALL=1 (with TRITON_INTERPRET=1) is the CPU dry run: tiny lengths, 2 heads
SMALL = os.environ.get("SWEEP_SMALL") == "1"
K128, K1M = (1024, 2048) if SMALL else (131072, 1048576)
TIMED = (K128, K1M) if SMALL else (K128, 2 * K128, 4 * K128, K1M)
CHECK_T = 2048 if SMALL else 16384
DEV = "cuda" if torch.cuda.is_available() else "cpu"
DT = torch.bfloat16 if DEV == "cuda" else torch.float32
STRENGTHS = [1.0, 1.25, 1.5, 1.75, 2.0]
SHAPE = dict(B=1, H=2 if SMALL else 8, H_kv=2 if SMALL else 8, D=128)
V3 = {"trunc": 1.5, "qnorm": False}   # the selection rule shipped before this sweep: one threshold from the 1K-key level
SETTINGS = {  # name -> ssa_select keywords beyond block_size 64 and topk 16
    "ssa": {},   # the defaults when run: ssa_v3's rule in h100_strength_sweep.json and h100_strength_sweep_q.json, ssa_q's since
    "ssa_v3": V3,
    "ssa_x32": {**V3, "exact": 32},
    "ssa_k8_x16": {**V3, "topk": 8, "exact": 16},
    "ssa_t1_x32": {"trunc": 2.0, "trunc_from": 1, "exact": 32, "qnorm": False},
    "ssa_b128_t1_x32": {"beam": 128, "trunc": 2.0, "trunc_from": 1, "exact": 32, "qnorm": False},
    # per-level truncation (leaves, 256, 1K, 4K keys) and unit-norm queries before the max over the block
    "ssa_q": {"trunc": (1.5, 1.75, 2.0, 2.25), "qnorm": True},
    "ssa_q_x32": {"trunc": (1.5, 1.75, 2.0, 2.25), "qnorm": True, "exact": 32},
    "ssa_q_c512": {"trunc": (1.5, 1.75, 2.0, 2.25), "qnorm": True, "top_cap": 512},
}
OTHERS = ["dsa", "hyper", "flash_window", "performer"]
STOP_AT = float(os.environ.get("SWEEP_SECONDS", "250"))  # no new step after this many seconds


def dists(n: int) -> list[int]:
    return [100, 1000, 10000, 100000, n // 2]


def ssa_fn(kw: dict):
    kw = {"topk": 16, **kw}
    return lambda q, k, v: block_sparse_attention(q, k, v, ssa_mod.ssa_select(q, k, 64, **kw), 64)


def check_triton(**kw) -> dict:
    """Triton selection against the PyTorch path on fp32 inputs of CHECK_T tokens -> counts of equal query blocks."""
    return check_select(CHECK_T, DEV, top_cap=16, top_beam=12, **kw)


def timings(res: dict, t0: float) -> None:
    B, H, H_kv, D = SHAPE.values()
    ms = res["ms"]
    for n in TIMED:
        q, k, v = (torch.randn(B, h, n, D, device=DEV, dtype=DT) for h in (H, H_kv, H_kv))
        for name, kw in SETTINGS.items():
            ms.setdefault(name, {})[str(n)] = time_call(lambda: ssa_fn(kw)(q, k, v), DEV, 0.5, 20 if DEV == "cuda" else 1)
        del q, k, v
        if n in (K128, K1M) and DEV == "cuda":
            for ref, case in REFERENCE_CASES.items():
                run, _ = case(n, DEV, DT, B, H, H_kv, D)
                ms.setdefault(ref, {})[str(n)] = time_call(run, DEV, 0.5)
                del run
        if DEV == "cuda":
            torch.cuda.empty_cache()
        print(f"timed n={n} at {time.time() - t0:.0f} s", {k: round(v[str(n)], 2) for k, v in ms.items() if str(n) in v},
              flush=True)
    for name in SETTINGS:
        pts = sorted((int(n), t) for n, t in ms[name].items())
        res["exponent"][name] = fit_exponent(pts)[0] if len(pts) > 1 else None


def probe(res: dict, names: list[str], ns: list[int], fns: dict, t0: float) -> None:
    for name in names:
        for n in ns:
            if time.time() - t0 > STOP_AT:
                print(f"skip {name} n={n}: past {STOP_AT:g} s", flush=True)
                continue
            p = run_probe([name], [n], 16, *SHAPE.values(), DT, DEV, STRENGTHS, n, 1e9,
                          log=print, dists=dists, fns=fns)
            res["probe"] += p["results"]
            res["device"] = p["device"]
            if DEV == "cuda":
                torch.cuda.empty_cache()


def save(res: dict, out: Path) -> None:
    dense = [r for r in res["probe"] if r["kernel"] == "flash_dense"]
    ref = {}
    for n in sorted({r["n"] for r in dense}):
        ok = [s for s in STRENGTHS if all(r["accuracy"] >= 0.99 for r in dense if r["n"] == n and r["strength"] == s)
              and any(r["n"] == n and r["strength"] == s for r in dense)]
        ref[str(n)] = ok[0] if ok else None
    res["reference"] = ref
    (out / "sweep.json").write_text(json.dumps(res, indent=1))


def main(out: Path, names: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for name in [n for n in SETTINGS if n not in names]:
        del SETTINGS[name]
    res = {"kind": "strength_sweep", "shape": SHAPE, "dtype": str(DT), "strengths": STRENGTHS, "settings": SETTINGS,
           "checks": {}, "ms": {}, "exponent": {}, "probe": [], "reference": {}}
    res["checks"]["exact_16K"] = check_triton(exact=32)
    res["checks"]["qnorm_16K"] = check_triton(exact=32, trunc=(1.5, 1.75, 2.0, 2.25), qnorm=True)
    print("check", res["checks"], flush=True)
    timings(res, t0)
    save(res, out)
    fns = {**_kernels(), **{name: ssa_fn(kw) for name, kw in SETTINGS.items()}}
    probe(res, ["flash_dense", *SETTINGS], [K128, K1M], fns, t0)
    save(res, out)
    probe(res, OTHERS, [K128], fns, t0)
    save(res, out)
    probe(res, ["flash_window", "performer", "hyper", "dsa"], [K1M], fns, t0)
    save(res, out)
    print(f"all done {time.time() - t0:.0f} s; reference {res['reference']}")
    ms = res["ms"]
    for name in SETTINGS:
        line = [f"{name:16s}"]
        for n in (K128, K1M):
            t = ms[name][str(n)]
            fa, cu = ms.get("sdpa_flash", {}).get(str(n), float("nan")), ms.get("sdpa_cudnn", {}).get(str(n), float("nan"))
            line.append(f"{n // 1024}K {t:7.2f} ms x{fa / t:6.1f} fa x{cu / t:6.1f} cudnn")
        line.append(f"exp {res['exponent'][name]:.3f}")
        print(" | ".join(line))
    for kernel in ["flash_dense", *SETTINGS, *OTHERS]:
        for n in (K128, K1M):
            rows = [r for r in res["probe"] if r["kernel"] == kernel and r["n"] == n]
            if rows:
                print(f"{kernel:16s} {n // 1024:5d}K min recall per s: " + " ".join(
                    f"{s:g}:{min(r['accuracy'] for r in rows if r['strength'] == s):.3f}" for s in STRENGTHS))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=os.environ.get("OUT", "/tmp/sweep_out"))
    ap.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names from SETTINGS")
    a = ap.parse_args()
    names = a.settings.split(",")
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        ap.error(f"unknown settings {unknown}; known: {list(SETTINGS)}")
    main(Path(a.out), names)
