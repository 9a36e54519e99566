"""Triton kernels for DSA's exact per-query top-k without writing the [T, T] indexer scores.

``dsa_select`` runs three steps per row chunk (see ``kernels.dsa.ops``):
1. a per-row threshold ``tau``: ``_sample_tau`` takes the r-th largest of the scores of every ``step``-th
   key (written by ``_indexer``), chosen so that about 1.5 * topk of the row's scores should be >= tau;
2. ``_gather_above``: one program per (query tile, batch) loads its indexer queries once, walks its causal
   key range tile by tile, recomputes the scores on chip (``_index_tile``) and appends every (score, key)
   with score >= tau to the row's candidate list of ``CAP`` slots. Slot numbers are a running count per
   row plus an in-tile prefix count, taken as one tensor-core product of the 0/1 keep mask with a
   triangular 0/1 matrix (exact in fp32, and it stays in the accumulator layout, where a scan would not):
   one writer per row, no atomics, candidates in ascending key order. It records each row's count;
3. ``_row_topk``: ``ROWS`` rows per program find the exact k-th largest candidate by bisection on the
   order-preserving int32 image of the fp32 scores, keep the candidates above it (and as many equal ones
   as needed), and write their key ids in ascending order, -1 padded: the final output, no sort.
If a row's count is in [min(topk, t + 1), CAP], its top-k are exactly the top-k of its candidates (all
of them are >= tau); other rows are redone exactly by the caller. FLOPs stay O(T^2) (the scores are
computed twice, once at 1/step density), memory O(T * CAP).
"""
from __future__ import annotations

import triton
import triton.language as tl

from longctx.kernels.dsa.triton_dsa import _index_tile, _load_queries


@triton.jit
def _append_tile(qs, ws, QI, KI, W, tau, tri, VAL, IDX, cnt, rows, rmask, local, start, T, CAP, stride_qh, stride_qt,
                 stride_kt, stride_wt, stride_vt, HI: tl.constexpr, DI: tl.constexpr, BLOCK_M: tl.constexpr,
                 BLOCK_N: tl.constexpr, PRECISION: tl.constexpr, HOIST: tl.constexpr):
    cols = start + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, DI)
    k = tl.load(KI + cols[:, None] * stride_kt + offs_d[None, :], mask=(cols < T)[:, None], other=0.0)
    s = _index_tile(qs, ws, QI, W, k, rows, rmask, stride_qh, stride_qt, stride_wt, HI, DI, BLOCK_M, BLOCK_N,
                    PRECISION, HOIST)
    # rows past the chunk have tau = +inf, so only causal keys of real rows are kept
    keep = (s >= tau[:, None]) & (cols[None, :] <= rows[:, None])
    keep_f = tl.where(keep, 1.0, 0.0)
    # fp16, not bf16: the CPU interpreter multiplies bf16 operands as their raw bits
    upto = tl.dot(keep_f.to(tl.float16), tri, out_dtype=tl.float32).to(tl.int32)  # keys kept up to this column
    # flat int32 offsets (-1: not kept) and scores: only these two change layout for the scatter, not two 64-bit
    # pointer tensors; flattening keeps row-major order, so flat element e is column start + e % BLOCK_N
    pos = cnt[:, None] + upto - 1
    off = tl.reshape(tl.where(keep & (pos < CAP), local[:, None] * stride_vt + pos, -1), [BLOCK_M * BLOCK_N])
    s_flat = tl.reshape(s, [BLOCK_M * BLOCK_N])
    tl.store(VAL + off, s_flat, mask=off >= 0)
    tl.store(IDX + off, start + tl.arange(0, BLOCK_M * BLOCK_N) % BLOCK_N, mask=off >= 0)
    return cnt + tl.sum(keep_f, 1).to(tl.int32)


@triton.jit
def _gather_above(QI, KI, W, TAU, VAL, IDX, CNT, stride_qb, stride_qh, stride_qt, stride_kb, stride_kt,
                  stride_wb, stride_wt, stride_tb, stride_vb, stride_vt, stride_cb,
                  T, t0, t1, CAP, HI: tl.constexpr, DI: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                  PRECISION: tl.constexpr, HOIST: tl.constexpr, INTERP: tl.constexpr):
    """Rows [t0, t1): append (score, key) for every causal key with score >= TAU[row] -> VAL, IDX [B, rows, CAP]
    (same strides), CNT [B, rows].

    HOIST: load the tile's queries once, before the key loop (else once per key tile: many indexer heads).
    """
    # the last query tiles see the most keys: launch them first to shorten the tail
    pm = tl.num_programs(0) - 1 - tl.program_id(0)
    b = tl.program_id(1)
    local = pm * BLOCK_M + tl.arange(0, BLOCK_M)
    rows = t0 + local
    rmask = rows < t1
    tau = tl.load(TAU + b * stride_tb + local, mask=rmask, other=float("inf"))
    cnt = tl.zeros([BLOCK_M], tl.int32)
    qi, ki, w = QI + b * stride_qb, KI + b * stride_kb, W + b * stride_wb
    val, idx = VAL + b * stride_vb, IDX + b * stride_vb
    offs_n = tl.arange(0, BLOCK_N)
    tri = (offs_n[:, None] <= offs_n[None, :]).to(tl.float16)  # [BLOCK_N, BLOCK_N]: column c sums rows <= c
    hi = tl.minimum(t0 + (pm + 1) * BLOCK_M, t1)
    if HOIST:
        qs, ws = _load_queries(qi, w, rows, rmask, stride_qh, stride_qt, stride_wt, HI, DI)
    else:
        qs, ws = 0, 0
    # under the CPU interpreter a while loop stands in for range() with a run-time bound (numpy >= 2.4)
    if INTERP:
        start = 0
        while start < hi:
            cnt = _append_tile(qs, ws, qi, ki, w, tau, tri, val, idx, cnt, rows, rmask, local, start, T, CAP, stride_qh,
                               stride_qt, stride_kt, stride_wt, stride_vt, HI, DI, BLOCK_M, BLOCK_N, PRECISION, HOIST)
            start += BLOCK_N
    else:
        for start in range(0, hi, BLOCK_N):
            cnt = _append_tile(qs, ws, qi, ki, w, tau, tri, val, idx, cnt, rows, rmask, local, start, T, CAP, stride_qh,
                               stride_qt, stride_kt, stride_wt, stride_vt, HI, DI, BLOCK_M, BLOCK_N, PRECISION, HOIST)
    tl.store(CNT + b * stride_cb + local, cnt, mask=rmask)


@triton.jit
def _order_key(v):
    """fp32 -> int32 with the same order (negative floats: flip the magnitude bits); its own inverse on the bits."""
    bits = v.to(tl.int32, bitcast=True)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


@triton.jit
def _kth_key(key, K):
    """key [ROWS, BLOCK] int32 -> [ROWS]: the largest x with at least K keys >= x (the K-th largest key), by
    32 bisection steps; INT32_MIN where a row holds fewer than K keys above INT32_MIN."""
    lo = tl.full([key.shape[0]], -(1 << 31), tl.int64)
    hi = tl.full([key.shape[0]], (1 << 31) - 1, tl.int64)
    for _ in tl.static_range(32):
        mid = lo + (hi - lo + 1) // 2
        enough = tl.sum((key >= mid.to(tl.int32)[:, None]).to(tl.int32), 1) >= K
        lo = tl.where(enough, mid, lo)
        hi = tl.where(enough, hi, mid - 1)
    return lo.to(tl.int32)


@triton.jit
def _sample_tau(S, TAU, n_rows, n_cols, stride_sb, stride_st, stride_tb, R, BLOCK: tl.constexpr, ROWS: tl.constexpr):
    """TAU[b, row] = the R-th largest of S[b, row, :n_cols] (sampled scores, -inf past the row's causal end)."""
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    b = tl.program_id(1)
    cols = tl.arange(0, BLOCK)
    m = (rows < n_rows)[:, None] & (cols < n_cols)[None, :]
    v = tl.load(S + b * stride_sb + rows[:, None] * stride_st + cols[None, :], mask=m, other=float("-inf"))
    kth = _order_key(_kth_key(tl.where(m, _order_key(v), -(1 << 31)), R))
    tl.store(TAU + b * stride_tb + rows, kth.to(tl.float32, bitcast=True), mask=rows < n_rows)


@triton.jit
def _row_topk(VAL, IDX, CNT, OUT, n_rows, stride_vb, stride_vt, stride_cb, stride_ob, stride_ot,
              K, CAP: tl.constexpr, ROWS: tl.constexpr):
    """Per row: the ids of the K largest of its CNT candidates (VAL, IDX: same strides; all of them if CNT <= K),
    ascending, -1 padded -> OUT."""
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    b = tl.program_id(1)
    rmask = rows < n_rows
    n = tl.load(CNT + b * stride_cb + rows, mask=rmask, other=0)
    offs = tl.arange(0, CAP)
    valid = offs[None, :] < n[:, None]
    v = tl.load(VAL + b * stride_vb + rows[:, None] * stride_vt + offs[None, :], mask=valid, other=0.0)
    key = tl.where(valid, _order_key(v), -(1 << 31))
    kth = _kth_key(key, K)
    above = valid & (key > kth[:, None])
    tie = valid & (key == kth[:, None])
    need = K - tl.sum(above.to(tl.int32), 1)
    sel = above | (tie & (tl.cumsum(tie.to(tl.int32), 1) <= need[:, None]))
    sel = tl.where((n <= K)[:, None], valid, sel)
    # candidates sit in ascending key order, so compacting them keeps the ids ascending
    dst = tl.cumsum(sel.to(tl.int32), 1) - 1
    ids = tl.load(IDX + b * stride_vb + rows[:, None] * stride_vt + offs[None, :], mask=sel, other=0)
    out = OUT + b * stride_ob + rows[:, None] * stride_ot
    tl.store(out + dst, ids, mask=sel)
    pad = (offs[None, :] >= tl.sum(sel.to(tl.int32), 1)[:, None]) & (offs[None, :] < K) & rmask[:, None]
    tl.store(out + offs[None, :], tl.full([ROWS, CAP], -1, tl.int32), mask=pad)
