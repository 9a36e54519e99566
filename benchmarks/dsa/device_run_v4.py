"""One device call for DSA selection v4: exactness at 16K, v4 against v3 and SDPA at 128K (and 256K), a
per-kernel profile of v4's ``dsa_select`` and a small sweep of its launch shapes (``ops.TILES``). GPU only;
about 2 minutes with Triton compilation.

Run (device, repo root): ``PYTHONPATH=$PWD python -m benchmarks.dsa.device_run_v4 [OUT_DIR]`` (default $OUT or
/tmp/dsa_v4). Each stage runs in its own try/except (an error is printed and recorded, the next stage runs);
stages past a time budget are skipped. Writes results.json and prints a table last.
"""
from __future__ import annotations

import dataclasses

import torch

from longctx.evals.bench import run_bench
from longctx.kernels.dsa import (
    dsa_select,
    ops,
)
from benchmarks.dsa.device_run_v3 import (  # the stage runner, inputs and checks that do not depend on the version
    K16,
    K128,
    RESULTS,
    TOPK,
    begin,
    check_attention,
    count_redone,
    finish,
    indexer_inputs,
    profile_select,
    stage,
    sweep_families,
    topk_report,
)


def version(v: int) -> None:
    ops.TILES = dataclasses.replace(ops.TILES, version=v)


def check_exact(T: int = K16) -> dict:
    """v4's dsa_select == torch.topk over the fp32 lightning_indexer scores on rows with a clear k-th / (k+1)-th
    gap; the short rows are 0..t; the output ascending; and v4 == v3 on every row."""
    qi, ki, w = indexer_inputs(T)
    version(4)
    got, redone = count_redone(lambda: dsa_select(qi, ki, w, TOPK).long()[0])
    res = topk_report(qi, ki, w, got, redone)
    version(3)
    res["rows_equal_v3"] = int((got == dsa_select(qi, ki, w, TOPK).long()[0]).all(-1).sum())
    version(4)
    assert res["clear_rows_equal"] == res["clear_rows"] and res["short_rows_equal"], res
    return res


def sweep(T: int = K128) -> dict:
    """Median ms of v4's dsa_select per launch shape of _mask_above, then of _select_rows (on the fastest mask
    shape); the fastest of each family stays in ops.TILES."""
    qi, ki, w = indexer_inputs(T)
    select = lambda: dsa_select(qi, ki, w, TOPK)
    families = [
        [{"mask_m": 64, "mask_n": 64, "mask_warps": 4, "mask_stages": 2},
         {"mask_m": 128, "mask_n": 64, "mask_warps": 8, "mask_stages": 2},
         {"mask_m": 64, "mask_n": 64, "mask_warps": 4, "mask_stages": 3}],
        [{"rows_warps": 4, "rescore_n": 128}, {"rows_warps": 8, "rescore_n": 128},
         {"rows_warps": 4, "rescore_n": 256, "rows_stages": 3}],
    ]
    return sweep_families([(select, v) for v in families], margin_s=20)


def bench(ns: list[int], H_kv: int, kernels: list[str], v: int = 4) -> dict:
    version(v)
    try:
        return run_bench(kernels, ns, 1, 8, H_kv, 128, torch.bfloat16, "cuda", 30.0, log=print)
    finally:
        version(4)


def flash_ms(n: int) -> float | None:
    for name in ("bench_128k", "bench_256k"):
        for r in RESULTS.get(name, {}).get("results", []):
            if r["kernel"] == "sdpa_flash" and r["n"] == n:
                return r["ms"]
    return None


def main() -> None:
    version(4)   # every stage below runs v4 unless it names v3
    out = begin("/tmp/dsa_v4")
    stage("exact_16k", check_exact)
    stage("attention_small", check_attention)
    stage("bench_128k", lambda: bench([K128], 1, ["sdpa_flash", "sdpa_cudnn", "dsa_select", "dsa"]))
    stage("bench_128k_v3", lambda: bench([K128], 1, ["dsa_select", "dsa"], v=3))
    stage("profile_select_128k", profile_select)
    stage("sweep_128k", sweep)
    if RESULTS.get("sweep_128k", {}).get("chosen") not in (None, RESULTS["tiles_default"]):
        stage("bench_128k_swept", lambda: bench([K128], 1, ["dsa_select", "dsa"]))
    stage("bench_256k", lambda: bench([2 * K128], 1, ["sdpa_flash", "dsa_select", "dsa"]))
    finish(out)
    print(f"\nDSA v4 on {RESULTS['device']}, {RESULTS['wall_s']:.0f} s; errors: {RESULTS['errors'] or 'none'}")
    print(f"exact_16k: {RESULTS.get('exact_16k')}")
    print(f"{'stage':18s} {'kernel':12s} {'n':>7s} {'ms':>9s} {'x flash':>8s}")
    for name in ("bench_128k", "bench_128k_v3", "bench_128k_swept", "bench_256k"):
        for r in RESULTS.get(name, {}).get("results", []):
            fl = flash_ms(r["n"])
            ratio = "-" if fl is None else format(fl / r["ms"], ".2f")
            print(f"{name:18s} {r['kernel']:12s} {r['n']:7d} {r['ms']:9.2f} {ratio:>8s}")
    for e in RESULTS.get("profile_select_128k", {}).get("top", []):
        print(f"  profile {e['ms']:8.2f} ms  x{e['calls']:<3d} {e['name'][:60]}")


if __name__ == "__main__":
    main()
