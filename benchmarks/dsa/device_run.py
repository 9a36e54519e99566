"""One device call for DSA: exactness at 16K against torch.topk, ``dsa_attention`` against float64, SDPA flash /
cuDNN / ``dsa_select`` / ``dsa`` at 128K (H_kv 1 and 8) and 256K, a profile of ``dsa_select``, and a sweep of
launch shapes (``ops.TILES``). GPU only; about 2-3 minutes with Triton compilation. The stage runner, inputs and
checks here also serve ``device_run_floors``.

Run (device, repo root): ``PYTHONPATH=$PWD python -m benchmarks.dsa.device_run [OUT_DIR]`` (default $OUT or
/tmp/dsa). Each stage runs in its own try/except (an error is printed and recorded, the next stage runs);
stages past a time budget are skipped. Writes results.json and prints a table last.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import torch

from longctx.evals.bench import run_bench
from longctx.kernels.dsa import (
    dsa_attention,
    dsa_select,
    lightning_indexer,
    ops,
    sparse_attention,
)
from longctx.kernels.dsa import reference as ref
from benchmarks.gpu_check_utils import timed

K16, K128 = 16384, 131072
HI, DI, TOPK = 4, 64, 2048
BUDGET_S = 200.0
T_START = time.time()
RESULTS: dict = {"errors": {}}


def stage(name: str, fn) -> None:
    """Run one stage, keep its result or its error, never raise; skip it past the time budget."""
    if time.time() - T_START > BUDGET_S:
        print(f"[{name}] skipped: {time.time() - T_START:.0f} s spent", flush=True)
        RESULTS["errors"][name] = "skipped (time budget)"
        return
    t = time.time()
    try:
        RESULTS[name] = fn()
        print(f"[{name}] {time.time() - t:.1f} s: {json.dumps(RESULTS[name])[:600]}", flush=True)
    except Exception as e:  # noqa: BLE001  (one failing stage must not lose the others)
        traceback.print_exc()
        RESULTS["errors"][name] = f"{type(e).__name__}: {str(e)[:400]}"
    torch.cuda.empty_cache()


def begin(default_dir: str) -> Path:
    """The output folder (argv[1], else $OUT, else default_dir), created; the device and ops.TILES recorded."""
    out = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", default_dir))
    out.mkdir(parents=True, exist_ok=True)
    RESULTS["device"] = torch.cuda.get_device_name()
    RESULTS["tiles_default"] = dataclasses.asdict(ops.TILES)
    return out


def finish(out: Path) -> None:
    """The wall time and every stage's result into out/results.json."""
    RESULTS["wall_s"] = time.time() - T_START
    (out / "results.json").write_text(json.dumps(RESULTS, indent=1))


@contextmanager
def tiles(**overrides):
    """ops.TILES with these fields replaced inside the block, restored after it."""
    base = ops.TILES
    ops.TILES = dataclasses.replace(base, **overrides)
    try:
        yield
    finally:
        ops.TILES = base


def indexer_inputs(T: int, seed: int = 0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    qi = torch.randn(1, HI, T, DI, device="cuda", generator=g).bfloat16()
    ki = torch.randn(1, T, DI, device="cuda", generator=g).bfloat16()
    w = torch.rand(1, T, HI, device="cuda", generator=g).bfloat16()
    return qi, ki, w


def count_redone(fn):
    """Call fn() and count the rows dsa_select redid exactly (outside [k, cap] after the threshold pass)."""
    redone = []
    real = ops._exact_row
    ops._exact_row = lambda *a: redone.append(a[3]) or real(*a)
    try:
        out = fn()
    finally:
        ops._exact_row = real
    return out, len(redone)


def topk_report(qi, ki, w, got: torch.Tensor, redone: int) -> dict:
    """A selection ``got`` (int64 [T, TOPK], batch 0) against torch.topk over the fp32 lightning_indexer
    scores: equal rows among those with a clear k-th / (k+1)-th gap, short rows 0..t, ascending output."""
    T = got.shape[0]
    s = lightning_indexer(qi, ki, w)[0]
    val, idx = s.topk(TOPK + 1, dim=-1)
    want = idx[:, :TOPK].sort(-1).values
    del s, idx
    rows = torch.arange(T, device=got.device)
    gap = val[:, TOPK - 1] - val[:, TOPK]
    clear = (rows >= TOPK) & (gap > 1e-6 * val[:, 0].abs().clamp_min(1.0))
    short = rows < TOPK
    ar = torch.arange(TOPK, device=got.device)[None]
    want_short = torch.where(ar <= rows[:, None], ar, -1)
    return {"T": T, "topk": TOPK, "rows_redone": redone, "clear_rows": int(clear.sum()),
            "rows_ge_topk": int((rows >= TOPK).sum()),
            "clear_rows_equal": int((got[clear] == want[clear]).all(-1).sum()),
            "short_rows_equal": bool(torch.equal(got[short], want_short[short])),
            "ascending": bool((got[rows >= TOPK].diff(dim=-1) > 0).all())}


def check_exact(T: int = K16) -> dict:
    """dsa_select == torch.topk over the fp32 lightning_indexer scores on rows with a clear k-th / (k+1)-th gap."""
    qi, ki, w = indexer_inputs(T)
    got, redone = count_redone(lambda: dsa_select(qi, ki, w, TOPK).long()[0])
    res = topk_report(qi, ki, w, got, redone)
    assert res["clear_rows_equal"] == res["clear_rows"] and res["short_rows_equal"], res
    return res


def check_attention() -> dict:
    """dsa_attention (bf16) against the float64 reference at a small size, GQA and MQA."""
    out = {}
    for H_kv in (2, 1):
        g = torch.Generator(device="cuda").manual_seed(H_kv)
        q, k, v = (torch.randn(1, h, 1024, 128, device="cuda", generator=g).bfloat16() for h in (8, H_kv, H_kv))
        qi, ki, w = indexer_inputs(1024, seed=H_kv)
        o = dsa_attention(q, k, v, qi, ki, w, topk=256)
        r = ref.dsa_ref(q, k, v, qi, ki, w, 256)
        out[f"rel_err_Hkv{H_kv}"] = float((o.double() - r.double()).norm() / r.double().norm())
    return out


def profile_select(T: int = K128) -> dict:
    """Top 10 CUDA kernels of one dsa_select call (torch.profiler), and the rows redone."""
    qi, ki, w = indexer_inputs(T)
    _, redone = count_redone(lambda: dsa_select(qi, ki, w, TOPK))
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        dsa_select(qi, ki, w, TOPK)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_time_total > 0]
    events.sort(key=lambda e: -e.device_time_total)
    top = [{"name": e.key[:80], "ms": e.device_time_total / 1000, "calls": e.count} for e in events[:10]]
    return {"T": T, "rows_redone": redone, "cuda_ms_total": sum(e.device_time_total for e in events) / 1000,
            "top": top}


def sweep(T: int = K128) -> dict:
    """Median ms of dsa_select per launch shape of the mask pass, then of the row stage, then of sparse_attention
    (H=8, H_kv=1) per shape of its key steps, each family on the fastest of the ones before; the fastest of
    each family stays in ops.TILES."""
    qi, ki, w = indexer_inputs(T)
    q = torch.randn(1, 8, T, 128, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(1, 1, T, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    idx = dsa_select(qi, ki, w, TOPK)
    select = lambda: dsa_select(qi, ki, w, TOPK)
    attend = lambda: sparse_attention(q, k, v, idx)
    families = [
        (select, [{"mask_m": 64, "mask_n": 64, "mask_warps": 4, "mask_stages": 3},
                  {"mask_m": 128, "mask_n": 64, "mask_warps": 8, "mask_stages": 3},
                  {"mask_m": 64, "mask_n": 64, "mask_warps": 4, "mask_stages": 2}]),
        (select, [{"rows": 1, "rows_warps": 1}, {"rows": 2, "rows_warps": 2}, {"rows": 1, "rows_words": 64}]),
        (attend, [{"attn_n": 64, "attn_warps": 4, "attn_stages": 2}, {"attn_n": 64, "attn_warps": 4, "attn_stages": 3},
                  {"attn_n": 32, "attn_warps": 2, "attn_stages": 3}]),
    ]
    return sweep_families(families, margin_s=30)


def sweep_families(families: list, margin_s: float) -> dict:
    """families: [(fn, [TILES overrides, ...]), ...]. Median ms of fn() per override, each family on the fastest
    of the ones before; the fastest of each family stays in ops.TILES. Stops margin_s before the time budget."""
    res = {}
    base = ops.TILES
    chosen: dict = {}
    for fn, variants in families:
        fastest = None
        for var in variants:
            if time.time() - T_START > BUDGET_S - margin_s:
                break
            ops.TILES = dataclasses.replace(base, **{**chosen, **var})
            try:
                ms = timed(fn, "cuda", 0.3)
            except Exception as e:  # noqa: BLE001
                res[str(var)] = f"{type(e).__name__}: {str(e)[:200]}"
                continue
            res[str(var)] = ms
            if fastest is None or ms < fastest[1]:
                fastest = (var, ms)
        if fastest:
            chosen.update(fastest[0])
    ops.TILES = dataclasses.replace(base, **chosen)
    res["chosen"] = dataclasses.asdict(ops.TILES)
    return res


def bench(ns: list[int], H_kv: int, kernels: list[str]) -> dict:
    return run_bench(kernels, ns, 1, 8, H_kv, 128, torch.bfloat16, "cuda", 30.0, log=print)


def main() -> None:
    out = begin("/tmp/dsa")
    stage("exact_16k", check_exact)
    stage("attention_small", check_attention)
    stage("bench_128k_mqa", lambda: bench([K128], 1, ["sdpa_flash", "sdpa_cudnn", "dsa_select", "dsa"]))
    stage("profile_select_128k", profile_select)
    stage("bench_128k_gqa8", lambda: bench([K128], 8, ["sdpa_flash", "dsa_select", "dsa"]))
    stage("bench_256k_mqa", lambda: bench([2 * K128], 1, ["sdpa_flash", "dsa_select", "dsa"]))
    stage("sweep_128k", sweep)
    if RESULTS.get("sweep_128k", {}).get("chosen") not in (None, RESULTS["tiles_default"]):
        stage("bench_128k_mqa_swept", lambda: bench([K128], 1, ["dsa_select", "dsa"]))
    finish(out)
    print(f"\nDSA on {RESULTS['device']}, {RESULTS['wall_s']:.0f} s; errors: {RESULTS['errors'] or 'none'}")
    print(f"exact_16k: {RESULTS.get('exact_16k')}")
    print(f"{'stage':24s} {'kernel':12s} {'n':>7s} {'H_kv':>4s} {'ms':>9s} {'x flash':>8s}")
    for name in ("bench_128k_mqa", "bench_128k_gqa8", "bench_256k_mqa", "bench_128k_mqa_swept"):
        for r in RESULTS.get(name, {}).get("results", []):
            ratio = r["ratio_vs_sdpa_flash"]
            print(f"{name:24s} {r['kernel']:12s} {r['n']:7d} {RESULTS[name]['shape']['H_kv']:4d} {r['ms']:9.2f} "
                  f"{'-' if ratio is None else format(ratio, '.2f'):>8s}")
    for e in RESULTS.get("profile_select_128k", {}).get("top", []):
        print(f"  profile {e['ms']:8.2f} ms  x{e['calls']:<3d} {e['name'][:60]}")


if __name__ == "__main__":
    main()
