"""One device call for DSA selection v5 (v4's masks, ``triton_select5``'s row stage): exactness at 16K against
torch.topk and row by row against v3 and v4, v5 / v4 / v3 against SDPA flash and cuDNN at 128K (H_kv = 1), v5
against v3 row by row at 128K, a per-kernel profile of v5's ``dsa_select`` and a sweep of 4 shapes of its row
stage (``ops.TILES.sel5_*``). GPU only; about 2-3 minutes with Triton compilation.

Run (device, repo root): ``PYTHONPATH=$PWD:/tmp/site python -m benchmarks.dsa.device_run_v5 [OUT_DIR]`` (default
$OUT or /tmp/dsa_v5). Each stage runs in its own try/except (an error is printed and recorded, the next stage
runs); stages past the time budget of ``device_run_v3`` are skipped. Writes results.json and prints a table last.
"""
from __future__ import annotations

import dataclasses

import torch

from longctx.evals.bench import run_bench
from longctx.kernels.dsa import dsa_select, ops
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
    tiles,
    topk_report,
)

VERSIONS = (5, 4, 3)
# v5 row-stage shapes, the first the default (offline sm_90 registers / CTAs per SM by registers): 118 / 4,
# 116 / 2 (8 warps), 148 / 3, 96 / 5 (28 bytes of spills)
SHAPES = [{"sel5_rows": 4, "sel5_warps": 4, "sel5_rescore": 32, "sel5_slots": 128},
          {"sel5_rows": 8, "sel5_warps": 8, "sel5_rescore": 16, "sel5_slots": 128},
          {"sel5_rows": 4, "sel5_warps": 4, "sel5_rescore": 64, "sel5_slots": 128},
          {"sel5_rows": 2, "sel5_warps": 4, "sel5_rescore": 32, "sel5_slots": 256}]


def select_as(v: int, qi, ki, w) -> torch.Tensor:
    """dsa_select with ops.TILES.version = v (the other fields as they are) -> int64 [T, TOPK] of batch 0."""
    with tiles(version=v):
        return dsa_select(qi, ki, w, TOPK).long()[0]


def check_exact(T: int = K16) -> dict:
    """v5's dsa_select == torch.topk over the fp32 lightning_indexer scores on rows with a clear k-th / (k+1)-th gap;
    the short rows are 0..t; the output ascending; rows equal to v3's and to v4's (reported, not asserted: the
    paths score candidates with different products, so rows tied up to rounding may differ)."""
    qi, ki, w = indexer_inputs(T)
    got, redone = count_redone(lambda: select_as(5, qi, ki, w))
    res = topk_report(qi, ki, w, got, redone)
    for v in (3, 4):
        res[f"rows_equal_v{v}"] = int((got == select_as(v, qi, ki, w)).all(-1).sum())
    assert res["clear_rows_equal"] == res["clear_rows"] and res["short_rows_equal"] and res["ascending"], res
    return res


def agree_128k(T: int = K128) -> dict:
    """v5 against v3 row by row at 128K (long rows: 4096 mask words, ~3K candidates), and the rows v5 redid."""
    qi, ki, w = indexer_inputs(T)
    got, redone = count_redone(lambda: select_as(5, qi, ki, w))
    same = int((got == select_as(3, qi, ki, w)).all(-1).sum())
    return {"T": T, "rows": T, "rows_equal_v3": same, "rows_redone_v5": redone}


def bench(v: int, kernels: list[str]) -> dict:
    """run_bench at 128K, H_kv = 1 with ops.TILES.version = v."""
    with tiles(version=v):
        return run_bench(kernels, [K128], 1, 8, 1, 128, torch.bfloat16, "cuda", 30.0, log=print)


def sweep(T: int = K128) -> dict:
    """Median ms of v5's dsa_select per row-stage shape (SHAPES); the fastest stays in ops.TILES."""
    qi, ki, w = indexer_inputs(T)
    return sweep_families([(lambda: dsa_select(qi, ki, w, TOPK), SHAPES)], margin_s=15)


def table() -> list[str]:
    """The short summary printed last."""
    flash = {r["n"]: r["ms"] for r in RESULTS.get("bench_128k_v5", {}).get("results", []) if r["kernel"] == "sdpa_flash"}
    lines = [f"DSA v5 on {RESULTS['device']}, {RESULTS['wall_s']:.0f} s; errors: {RESULTS['errors'] or 'none'}",
             f"exact_16k: {RESULTS.get('exact_16k')}", f"agree_128k: {RESULTS.get('agree_128k')}",
             f"{'stage':20s} {'kernel':12s} {'n':>7s} {'ms':>9s} {'x flash':>8s}"]
    for name in ("bench_128k_v5", "bench_128k_v4", "bench_128k_v3", "bench_128k_v5_swept"):
        for r in RESULTS.get(name, {}).get("results", []):
            fl = flash.get(r["n"])
            ratio = "-" if fl is None else format(fl / r["ms"], ".2f")
            lines.append(f"{name:20s} {r['kernel']:12s} {r['n']:7d} {r['ms']:9.2f} {ratio:>8s}")
    for e in RESULTS.get("profile_select_128k_v5", {}).get("top", []):
        lines.append(f"  profile v5 {e['ms']:8.2f} ms  x{e['calls']:<3d} {e['name'][:60]}")
    for shape, ms in RESULTS.get("sweep_128k_v5", {}).items():
        if shape != "chosen":
            lines.append(f"  sweep v5 dsa_select {ms if isinstance(ms, str) else format(ms, '8.2f')}  {shape}")
    return lines


def main() -> None:
    out = begin("/tmp/dsa_v5")
    stage("exact_16k", check_exact)
    stage("bench_128k_v5", lambda: bench(5, ["sdpa_flash", "sdpa_cudnn", "dsa_select", "dsa"]))
    stage("bench_128k_v4", lambda: bench(4, ["dsa_select", "dsa"]))
    stage("bench_128k_v3", lambda: bench(3, ["dsa_select", "dsa"]))
    ops.TILES = dataclasses.replace(ops.TILES, version=5)  # the stages below run v5
    stage("profile_select_128k_v5", profile_select)
    stage("agree_128k", agree_128k)
    stage("attention_small_v5", check_attention)
    stage("sweep_128k_v5", sweep)
    swept = RESULTS.get("sweep_128k_v5", {}).get("chosen")
    if swept and {k: swept[k] for k in SHAPES[0]} != SHAPES[0]:
        stage("bench_128k_v5_swept", lambda: bench(5, ["dsa_select", "dsa"]))
    finish(out)
    print("\n" + "\n".join(table()))


if __name__ == "__main__":
    main()
