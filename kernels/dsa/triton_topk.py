"""Triton kernels for DSA's exact per-query top-k without writing the [T, T] indexer scores.

``dsa_select`` runs three steps per row chunk (see ``kernels.dsa.ops``):
1. a per-row threshold ``tau`` from the scores of every ``step``-th key (small, written by ``_indexer``),
   chosen so that about 1.5 * topk of the row's scores should be >= tau;
2. ``_gather_above``: one program per (query tile, batch) walks its causal key range tile by tile,
   recomputes the indexer scores on chip (``_index_tile``), and appends every (score, key) with
   score >= tau to the row's candidate list of ``CAP`` slots (a running count per row, a prefix sum
   per tile: one writer per row, so no atomics and a deterministic order); it records the row's count;
3. ``_row_topk``: one program per row finds the exact k-th largest candidate by bisection on the
   order-preserving integer image of the fp32 scores, keeps the candidates above it (and as many equal
   ones as needed), and writes their key ids compacted, INT32_MAX padded (the caller sorts them).
If a row's count is in [min(topk, t + 1), CAP], its top-k are exactly the top-k of its candidates (all
of them are >= tau); other rows are redone exactly by the caller. FLOPs stay O(T^2) (the scores are
computed twice, once at 1/step density), memory O(T * CAP).
"""
from __future__ import annotations

import triton
import triton.language as tl

from kernels.dsa.triton_dsa import _index_tile


@triton.jit
def _append_tile(QI, KI, W, tau, VAL, IDX, cnt, rows, brow, rmask, start, T, CAP, stride_qh, stride_qt, stride_kt,
                 stride_wt, stride_vt, stride_it, HI: tl.constexpr, DI: tl.constexpr, BLOCK_M: tl.constexpr,
                 BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    cols = start + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, DI)
    k = tl.load(KI + cols[:, None] * stride_kt + offs_d[None, :], mask=(cols < T)[:, None], other=0.0)
    s = _index_tile(QI, W, k, rows, rmask, stride_qh, stride_qt, stride_wt, HI, DI, BLOCK_M, BLOCK_N, PRECISION)
    keep = (s >= tau[:, None]) & (cols[None, :] <= rows[:, None]) & rmask[:, None]
    keep_i = keep.to(tl.int32)
    pos = cnt[:, None] + tl.cumsum(keep_i, 1) - 1
    ok = keep & (pos < CAP)
    tl.store(VAL + brow[:, None] * stride_vt + pos, s, mask=ok)
    tl.store(IDX + brow[:, None] * stride_it + pos, cols[None, :] + tl.zeros_like(pos), mask=ok)
    return cnt + tl.sum(keep_i, 1)


@triton.jit
def _gather_above(QI, KI, W, TAU, VAL, IDX, CNT, stride_qb, stride_qh, stride_qt, stride_kb, stride_kt,
                  stride_wb, stride_wt, stride_tb, stride_vb, stride_vt, stride_ib, stride_it, stride_cb,
                  T, t0, t1, CAP, HI: tl.constexpr, DI: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                  PRECISION: tl.constexpr, INTERP: tl.constexpr):
    # the last query tiles see the most keys: launch them first to shorten the tail
    pm = tl.num_programs(0) - 1 - tl.program_id(0)
    b = tl.program_id(1)
    local = pm * BLOCK_M + tl.arange(0, BLOCK_M)
    rows = t0 + local
    rmask = rows < t1
    tau = tl.load(TAU + b * stride_tb + local, mask=rmask, other=float("inf"))
    cnt = tl.zeros([BLOCK_M], tl.int32)
    qi, ki, w = QI + b * stride_qb, KI + b * stride_kb, W + b * stride_wb
    val, idx = VAL + b * stride_vb, IDX + b * stride_ib
    hi = tl.minimum(t0 + (pm + 1) * BLOCK_M, t1)
    # under the CPU interpreter a while loop stands in for range() with a run-time bound (numpy >= 2.4)
    if INTERP:
        start = 0
        while start < hi:
            cnt = _append_tile(qi, ki, w, tau, val, idx, cnt, rows, local, rmask, start, T, CAP, stride_qh, stride_qt,
                               stride_kt, stride_wt, stride_vt, stride_it, HI, DI, BLOCK_M, BLOCK_N, PRECISION)
            start += BLOCK_N
    else:
        for start in range(0, hi, BLOCK_N):
            cnt = _append_tile(qi, ki, w, tau, val, idx, cnt, rows, local, rmask, start, T, CAP, stride_qh, stride_qt,
                               stride_kt, stride_wt, stride_vt, stride_it, HI, DI, BLOCK_M, BLOCK_N, PRECISION)
    tl.store(CNT + b * stride_cb + local, cnt, mask=rmask)


@triton.jit
def _row_topk(VAL, IDX, CNT, OUT, stride_vb, stride_vt, stride_ib, stride_it, stride_cb, stride_ob, stride_ot,
              K, CAP: tl.constexpr):
    r = tl.program_id(0)
    b = tl.program_id(1)
    n = tl.load(CNT + b * stride_cb + r)
    offs = tl.arange(0, CAP)
    valid = offs < n
    v = tl.load(VAL + b * stride_vb + r * stride_vt + offs, mask=valid, other=0.0)
    ids = tl.load(IDX + b * stride_ib + r * stride_it + offs, mask=valid, other=0)
    # fp32 -> int32 with the same order (negative floats: flip the magnitude bits); empty slots lowest
    bits = v.to(tl.int32, bitcast=True)
    key = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).to(tl.int64)
    key = tl.where(valid, key, -(1 << 32))
    lo = tl.full([], -(1 << 31), tl.int64)
    hi = tl.full([], (1 << 31) - 1, tl.int64)
    # largest x with at least K keys >= x: the k-th largest score's image
    for _ in tl.static_range(32):
        mid = lo + (hi - lo + 1) // 2
        enough = tl.sum((key >= mid).to(tl.int32)) >= K
        lo = tl.where(enough, mid, lo)
        hi = tl.where(enough, hi, mid - 1)
    above = key > lo
    tie = key == lo
    sel = above | (tie & (tl.cumsum(tie.to(tl.int32), 0) <= K - tl.sum(above.to(tl.int32))))
    sel = tl.where(n <= K, valid, sel & valid)
    # compact the chosen ids to the front (candidate order), fill the rest of the K slots with INT32_MAX
    dst = tl.cumsum(sel.to(tl.int32), 0) - 1
    row_out = OUT + b * stride_ob + r * stride_ot
    tl.store(row_out + dst, ids, mask=sel)
    tl.store(row_out + offs, tl.full([CAP], 2147483647, tl.int32), mask=(offs >= tl.sum(sel.to(tl.int32))) & (offs < K))
