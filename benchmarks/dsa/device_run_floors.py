"""One device call: what each part of DSA costs at 128K, each timed alone, beside the least the two unavoidable
parts can cost (the floors that decide whether 3x SDPA flash is reachable). GPU only; about 2 minutes.

Shape of the issue's target: B=1, H=8, H_kv=1, D=128, bf16, k=2048; indexer HI=4, DI=64. Stages:
- ``exact_16k``: the selection against torch.topk at 16K;
- ``bench``: SDPA flash, cuDNN, ``dsa_select`` and ``dsa`` in one run, for the ratios;
- ``attention``: ``sparse_attention`` alone on the selected indices, and the bytes it gathers per ms; ``gather_floor``:
  the same gathers with no arithmetic (``_gather_sum``), all keys at once and in two halves that fit L2;
- ``score_floor``: ``_score_sum``, the indexer's scores and nothing else (every causal (query, key) pair, all HI
  heads, summed per row so nothing is dead), at a few tile shapes, in bf16 and in fp8 e4m3 (DeepSeek's indexer
  precision): the least one full O(T^2) indexer pass costs in Triton here;
- ``parts``: the selection's parts alone, summed over dsa_select's row chunks: sampled scores, thresholds, the
  mask pass, the row stage cut after each of its five steps (``ops._rows(upto=...)``), the row stage at other
  shapes;
- ``bench_best_rows``: the default and the fastest row-stage shape of ``parts``, twice in turn; ``bench_256k``:
  SDPA flash and DSA at 256K.

Run (device, repo root): ``PYTHONPATH=$PWD python -m benchmarks.dsa.device_run_floors [OUT_DIR [STAGE ...]]``
(all stages when none are named). Writes OUT_DIR/results.json and prints a table last.
"""
from __future__ import annotations

import json
import sys

import torch
import triton
import triton.language as tl

from longctx.evals.bench import run_bench
from benchmarks.dsa import device_run
from benchmarks.dsa.device_run import K128, RESULTS, TOPK, begin, check_exact, finish, indexer_inputs, stage, tiles
from benchmarks.gpu_check_utils import timed
from longctx.kernels.dsa import dsa_select, ops, sparse_attention
from longctx.kernels.dsa.triton_dsa import _index_tile, _load_queries

# (BLOCK_M, BLOCK_N, warps, stages); 128 x 128 spills at 255 registers (offline sm_90 compile) and is left out
SCORE_SHAPES = [(64, 64, 4, 3), (128, 64, 8, 3), (64, 128, 4, 3), (128, 64, 4, 2), (64, 64, 4, 4)]
# row-stage launch shapes (the default: 1 row, 1 warp, 128 words, 128 slots, 32 band keys per step, 2 stages)
ROW_SHAPES = [{"rows_words": 64}, {"rows_slots": 256}, {"rows_rescore": 16}, {"rows_stages": 3}]


def bench(kernels: list[str], n: int = K128) -> dict:
    """run_bench at n, B=1, H=8, H_kv=1, D=128, bf16 (the shape of the issue's target)."""
    return run_bench(kernels, [n], 1, 8, 1, 128, torch.bfloat16, "cuda", 30.0, log=print)


@triton.jit
def _score_tile(qs, ws, QI, W, KI, out, rows, rmask, start, T, stride_kt, HI: tl.constexpr, DI: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr, DIAG: tl.constexpr):
    cols = start + tl.arange(0, BLOCK_N)
    k = tl.load(KI + cols[:, None] * stride_kt + tl.arange(0, DI)[None, :], mask=(cols < T)[:, None], other=0.0)
    s = _index_tile(qs, ws, QI, W, k, rows, rmask, 0, 0, 0, HI, DI, BLOCK_M, BLOCK_N, PRECISION, True)
    if DIAG:
        s = tl.where(cols[None, :] <= rows[:, None], s, 0.0)
    return out + s


@triton.jit
def _score_sum(QI, KI, W, OUT, T, stride_qh, stride_qt, stride_kt, stride_wt, HI: tl.constexpr, DI: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    """OUT[t] = sum over causal keys s of the indexer score I[t, s] (batch 0): the scoring work of one full pass."""
    pm = tl.num_programs(0) - 1 - tl.program_id(0)
    rows = pm * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < T
    qs, ws = _load_queries(QI, W, rows, rmask, stride_qh, stride_qt, stride_wt, HI, DI)
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    full = (pm * BLOCK_M + 1) // BLOCK_N * BLOCK_N
    for start in range(0, full, BLOCK_N):
        acc = _score_tile(qs, ws, QI, W, KI, acc, rows, rmask, start, T, stride_kt, HI, DI, BLOCK_M, BLOCK_N,
                          PRECISION, False)
    for start in range(full, tl.minimum(pm * BLOCK_M + BLOCK_M, T), BLOCK_N):
        acc = _score_tile(qs, ws, QI, W, KI, acc, rows, rmask, start, T, stride_kt, HI, DI, BLOCK_M, BLOCK_N,
                          PRECISION, True)
    tl.store(OUT + rows, tl.sum(acc, 1), mask=rmask)


def score_sum(qi, ki, w, bm: int, bn: int, warps: int, stages: int) -> torch.Tensor:
    """qi [1, HI, T, DI], ki [1, T, DI] (bf16 or fp8 e4m3), w [1, T, HI] -> fp32 [T] row sums of the scores."""
    _, HI, T, DI = qi.shape
    out = torch.empty(T, device=qi.device)
    _score_sum[(triton.cdiv(T, bm),)](qi, ki, w, out, T, qi.stride(1), qi.stride(2), ki.stride(1), w.stride(1), HI=HI,
                                      DI=DI, BLOCK_M=bm, BLOCK_N=bn, PRECISION="tf32", num_warps=warps,
                                      num_stages=stages)
    return out


def score_floor(T: int = K128) -> dict:
    """Median ms and TFLOP/s of ``_score_sum`` per (BLOCK_M, BLOCK_N, warps, stages), bf16 and fp8; the bf16 sums
    are checked against the row sums of the fp32 ``lightning_indexer`` at 4K."""
    qi, ki, w = indexer_inputs(4096)
    want = ops.lightning_indexer(qi, ki, w)[0].nan_to_num(neginf=0.0).sum(-1)
    got = score_sum(qi, ki, w, *SCORE_SHAPES[0])
    res = {"check_4k_max_rel": float(((got - want).abs() / want.abs().clamp_min(1.0)).max())}
    qi, ki, w = indexer_inputs(T)
    flops = 2 * qi.shape[1] * qi.shape[3] * T * (T + 1) / 2
    for dtype in (torch.bfloat16, torch.float8_e4m3fn):
        a, b = qi.to(dtype), ki.to(dtype)
        for shape in SCORE_SHAPES:
            name = f"{str(dtype).split('.')[-1]} {shape}"
            try:
                ms = timed(lambda: score_sum(a, b, w, *shape), "cuda", 0.3)
                res[name] = {"ms": ms, "tflops": flops / ms / 1e9}
            except Exception as e:  # noqa: BLE001  (a shape that does not compile is reported, not fatal)
                res[name] = f"{type(e).__name__}: {str(e)[:160]}"
    return res


def attention(T: int = K128) -> dict:
    """sparse_attention alone on the selected indices (H=8, H_kv=1, D=128, bf16): ms and GB/s of gathered K and V rows."""
    qi, ki, w = indexer_inputs(T)
    idx = dsa_select(qi, ki, w, TOPK)
    q = torch.randn(1, 8, T, 128, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(1, 1, T, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    ms = timed(lambda: sparse_attention(q, k, v, idx), "cuda", 0.5)
    gathered = int((idx >= 0).sum()) * 2 * 128 * 2
    return {"ms": ms, "gathered_GB": gathered / 1e9, "GB_per_s": gathered / ms / 1e6}


def parts(T: int = K128) -> dict:
    """The selection's parts at 128K, each timed alone (median ms), summed over dsa_select's row chunks (one chunk of masks
    past 2^31 bytes would overflow the kernels' int32 offsets)."""
    qi, ki, w = indexer_inputs(T)
    step = 16
    k_sample = ki[:, ::step].contiguous()
    cap = triton.next_power_of_2(2 * TOPK)
    r_lo = -(-3 * TOPK // (2 * step))
    r_hi = 3 * TOPK // (4 * step)
    rows = ops._chunk_rows(1, T, step, cap)
    out = torch.empty(1, T, TOPK, dtype=torch.int32, device="cuda")
    res: dict = {"chunks": 0}

    def add(key: str, ms: float) -> None:
        res[key] = res.get(key, 0.0) + ms

    for t0 in range(0, T, rows):
        t1 = min(T, t0 + rows)
        a = max(t0, cap)
        res["chunks"] += 1
        add("sampled_scores", timed(lambda: ops._scores(qi, k_sample, w, a, t1, step), "cuda", 0.2))
        add("sample_and_thresholds", timed(
            lambda: ops._sample_thresholds(qi, k_sample, w, a, t1, step, r_lo, r_hi), "cuda", 0.2))
        add("thresholds_and_masks", timed(
            lambda: ops._masks(qi, ki, k_sample, w, t0, t1, step, r_lo, cap, TOPK), "cuda", 0.2))
        words = ops._masks(qi, ki, k_sample, w, t0, t1, step, r_lo, cap, TOPK)
        for upto in (1, 2, 3, 4, 5):
            add(f"rows_upto{upto}", timed(lambda u=upto: ops._rows(qi, ki, w, words, t0, cap, TOPK, out, u),
                                          "cuda", 0.2))
        for var in ROW_SHAPES:
            try:
                with tiles(**var):
                    add(f"rows {var}", timed(lambda: ops._rows(qi, ki, w, words, t0, cap, TOPK, out), "cuda", 0.2))
            except Exception as e:  # noqa: BLE001
                res[f"rows {var}"] = f"{type(e).__name__}: {str(e)[:160]}"
    return res


@triton.jit
def _gather_sum(K, V, IDX, O, stride_kt, stride_it, lo, hi, KSEL: tl.constexpr, D: tl.constexpr,
                BLOCK_N: tl.constexpr):
    """O[t] = sum of K and V rows over query t's listed keys in [lo, hi): the gather of the sparse attention alone."""
    t = tl.program_id(0)
    offs_d = tl.arange(0, D)
    acc = tl.zeros([D], tl.float32)
    for start in range(0, KSEL, BLOCK_N):
        ids = tl.load(IDX + t * stride_it + start + tl.arange(0, BLOCK_N))
        m = ((ids >= lo) & (ids < hi))[:, None]
        k = tl.load(K + ids[:, None] * stride_kt + offs_d[None, :], mask=m, other=0.0)
        v = tl.load(V + ids[:, None] * stride_kt + offs_d[None, :], mask=m, other=0.0)
        acc += tl.sum(k.to(tl.float32) + v.to(tl.float32), 0)
    tl.store(O + t * D + offs_d, acc)


def gather_floor(T: int = K128) -> dict:
    """``_gather_sum`` on the selected indices: all keys in one launch, and the keys in two halves (two launches whose K and V
    halves, 32 MB each, fit the 50 MB L2): median ms and GB/s."""
    qi, ki, w = indexer_inputs(T)
    idx = dsa_select(qi, ki, w, TOPK)[0]
    k, v = (torch.randn(T, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    o = torch.empty(T, 128, device="cuda")
    gathered = int((idx >= 0).sum()) * 2 * 128 * 2
    res = {}
    for bn, warps in ((32, 2), (64, 4)):
        def run(bounds, bn=bn, warps=warps):
            for lo, hi in bounds:
                _gather_sum[(T,)](k, v, idx, o, k.stride(0), idx.stride(0), lo, hi, KSEL=TOPK, D=128, BLOCK_N=bn,
                                  num_warps=warps)
        for name, bounds in (("one", [(0, T)]), ("halves", [(0, T // 2), (T // 2, T)])):
            ms = timed(lambda: run(bounds), "cuda", 0.3)
            res[f"{name} n{bn} w{warps}"] = {"ms": ms, "GB_per_s": gathered / ms / 1e6}
    return res


def bench_best_rows() -> dict:
    """dsa_select and dsa at 128K: the default row-stage shape, then the fastest shape of ``parts`` (the default if
    none is faster), twice in turn (the spread between repeats says whether a difference is real)."""
    timing = [(RESULTS.get("parts", {}).get(f"rows {var}"), i) for i, var in enumerate(ROW_SHAPES)]
    timing = [(ms, i) for ms, i in timing if isinstance(ms, float)]
    default = RESULTS.get("parts", {}).get("rows_upto5")
    best = ROW_SHAPES[min(timing)[1]] if timing and default and min(timing)[0] < default else {}
    res: dict = {"best_shape": best, "runs": []}
    for _ in range(2):
        for name, shape in (("default", {}), ("best", best)):
            with tiles(**shape):
                rows = bench(["dsa_select", "dsa"])["results"]
            res["runs"].append({"shape": name, **{r["kernel"]: r["ms"] for r in rows}})
    return res


def table() -> list[str]:
    lines = [f"DSA floors on {RESULTS['device']}, {RESULTS['wall_s']:.0f} s; errors: {RESULTS['errors'] or 'none'}",
             f"exact_16k: {RESULTS.get('exact_16k')}"]
    for name in ("bench", "bench_256k"):
        for r in RESULTS.get(name, {}).get("results", []):
            lines.append(f"{name:9s} {r['kernel']:12s} {r['ms']:9.2f} ms  x flash {r['ratio_vs_sdpa_flash'] or '-'}")
    for name in ("attention", "gather_floor", "score_floor", "parts", "bench_best_rows"):
        for key, val in RESULTS.get(name, {}).items():
            lines.append(f"{name:11s} {key:44s} {json.dumps(val)}")
    return lines


def main() -> None:
    device_run.BUDGET_S = 420.0
    out = begin("/tmp/dsa_floors")
    only = set(sys.argv[2:])  # stage names to run; all when none are given
    stages = [("exact_16k", check_exact),
              ("bench", lambda: bench(["sdpa_flash", "sdpa_cudnn", "dsa_select", "dsa"])), ("attention", attention),
              ("gather_floor", gather_floor), ("score_floor", score_floor), ("parts", parts),
              ("bench_best_rows", bench_best_rows),
              ("bench_256k", lambda: bench(["sdpa_flash", "dsa_select", "dsa"], 2 * K128))]
    for name, fn in stages:
        if not only or name in only:
            stage(name, fn)
    finish(out)
    print("\n" + "\n".join(table()))


if __name__ == "__main__":
    main()
