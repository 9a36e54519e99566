"""Triton kernels of DSA selection's fused pass: per-row thresholds from a sampled score row, then the bit masks
of the scores above them, without writing the [T, T] scores.

``dsa_select`` (``longctx.kernels.dsa.ops``) runs per row chunk:
1. ``_sample_tau2``: two thresholds per row from every ``step``-th key's score (``_indexer``): ``tau_lo``
   (about 1.5 topk of the row's scores should pass) and ``tau_hi`` (about 0.75 topk should pass), by a
   bisection on the score value (the thresholds only need to fall near those ranks; exactness never
   depends on where they fall);
2. ``_mask_above``: one program per (query tile, batch) recomputes the scores tile by tile and writes, per
   (row, key), two bits: ``s >= tau_lo`` and ``s >= tau_hi``. The bits are packed into bytes by one small
   tensor-core product of the per-score code (0, 1 or 257) with a [BLOCK_N, 16] matrix of powers of two
   (exact in fp32), which stays in the accumulator layout: no per-score store, no layout conversion of the
   score tile. Per tile it stores BLOCK_M x BLOCK_N / 8 bytes per level.
The row stage (``triton_rows``) turns the masks into each row's exact top-k.
"""
from __future__ import annotations

import triton
import triton.language as tl

from longctx.kernels.dsa.triton_dsa import _index_tile, _load_queries


@triton.jit
def _kth_value(v, valid, R, STEPS: tl.constexpr):
    """v [BLOCK] fp32 -> a value x with at least R of the valid v >= x, within (max - min) / 2^STEPS of the
    largest such x; -inf where fewer than one is valid (R is clamped to the valid count)."""
    n = tl.sum(valid.to(tl.int32), 0)
    r = tl.minimum(R, n)
    lo = tl.min(tl.where(valid, v, float("inf")), 0)
    hi = tl.max(tl.where(valid, v, float("-inf")), 0)
    for _ in tl.static_range(STEPS):
        mid = lo + (hi - lo) * 0.5
        enough = tl.sum((valid & (v >= mid)).to(tl.int32), 0) >= r
        lo = tl.where(enough, mid, lo)
        hi = tl.where(enough, hi, mid)
    return tl.where(n > 0, lo, float("-inf"))


@triton.jit
def _sample_tau2(S, TAU, n_rows, n_cols, row0, stride_sb, stride_st, stride_tb, stride_tl, R_LO, R_HI,
                 BLOCK: tl.constexpr, STEPS: tl.constexpr):
    """Rows row0 + program_id(0): TAU[b, 0, row] near the R_LO-th largest sampled score, TAU[b, 1, row] near the
    R_HI-th (S: -inf past the row's causal end; BLOCK covers the row's finite columns)."""
    row = row0 + tl.program_id(0)
    b = tl.program_id(1)
    cols = tl.arange(0, BLOCK)
    v = tl.load(S + b * stride_sb + row * stride_st + cols, mask=cols < n_cols, other=float("-inf"))
    valid = v > float("-inf")
    tau = TAU + b * stride_tb + row
    tl.store(tau, _kth_value(v, valid, R_LO, STEPS))
    tl.store(tau + stride_tl, _kth_value(v, valid, R_HI, STEPS))


@triton.jit
def _mask_tile(qs, ws, QI, KI, W, tau_lo, tau_hi, enc, MASK, rows, rmask, local, start, T, stride_qh, stride_qt,
               stride_kt, stride_wt, stride_mt, stride_ml, HI: tl.constexpr, DI: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, NB: tl.constexpr, PRECISION: tl.constexpr,
               HOIST: tl.constexpr, DIAG: tl.constexpr):
    cols = start + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, DI)
    k = tl.load(KI + cols[:, None] * stride_kt + offs_d[None, :], mask=(cols < T)[:, None], other=0.0)
    s = _index_tile(qs, ws, QI, W, k, rows, rmask, stride_qh, stride_qt, stride_wt, HI, DI, BLOCK_M, BLOCK_N,
                    PRECISION, HOIST)
    # code 1 for s >= tau_lo, 257 for s >= tau_hi (>= tau_lo): byte j of the product holds the lo bits of keys
    # 8j..8j+7, the next byte their hi bits (at most 65535: exact in fp32; the codes and powers of two are exact in fp16)
    code = tl.where(s >= tau_lo[:, None], 1.0, 0.0) + tl.where(s >= tau_hi[:, None], 256.0, 0.0)
    if DIAG:  # rows past the chunk have tau = +inf; only tiles that reach the diagonal need the causal mask
        code = tl.where(cols[None, :] <= rows[:, None], code, 0.0)
    x = tl.dot(code.to(tl.float16), enc, out_dtype=tl.float32).to(tl.int32)  # [BLOCK_M, NB]
    offs_b = tl.arange(0, NB)
    ptr = MASK + local[:, None] * stride_mt + start // 8 + offs_b[None, :]
    m = rmask[:, None] & (offs_b < BLOCK_N // 8)[None, :]
    tl.store(ptr, (x & 255).to(tl.uint8), mask=m)
    tl.store(ptr + stride_ml, (x >> 8).to(tl.uint8), mask=m)


@triton.jit
def _mask_above(QI, KI, W, TAU, MASK, stride_qb, stride_qh, stride_qt, stride_kb, stride_kt, stride_wb, stride_wt,
                stride_tb, stride_tl, stride_mb, stride_mt, stride_ml, T, t0, t1, HI: tl.constexpr,
                DI: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, NB: tl.constexpr, PRECISION: tl.constexpr,
                HOIST: tl.constexpr, INTERP: tl.constexpr):
    """Rows [t0, t1): MASK[b, row, 0 / 1, key // 8] bit key % 8 = (score >= TAU[b, 0 / 1, row]) for causal keys,
    0 for the other keys of the tiles it writes (every tile up to the row tile's end). NB = max(16, BLOCK_N // 8)."""
    pm = tl.num_programs(0) - 1 - tl.program_id(0)  # longest rows first
    b = tl.program_id(1)
    local = pm * BLOCK_M + tl.arange(0, BLOCK_M)
    rows = t0 + local
    rmask = rows < t1
    tau_lo = tl.load(TAU + b * stride_tb + local, mask=rmask, other=float("inf"))
    tau_hi = tl.load(TAU + b * stride_tb + stride_tl + local, mask=rmask, other=float("inf"))
    qi, ki, w, mask = QI + b * stride_qb, KI + b * stride_kb, W + b * stride_wb, MASK + b * stride_mb
    offs_n = tl.arange(0, BLOCK_N)
    offs_b = tl.arange(0, NB)
    enc = tl.where((offs_n[:, None] // 8) == offs_b[None, :], (1 << (offs_n % 8)).to(tl.float16)[:, None], 0.0)
    enc = enc.to(tl.float16)
    row_lo = t0 + pm * BLOCK_M
    hi = tl.minimum(row_lo + BLOCK_M, t1)
    full = (row_lo + 1) // BLOCK_N * BLOCK_N  # key tiles whose every key is <= the tile's first row
    if HOIST:
        qs, ws = _load_queries(qi, w, rows, rmask, stride_qh, stride_qt, stride_wt, HI, DI)
    else:
        qs, ws = 0, 0
    if INTERP:  # a while loop stands in for range() with a run-time bound (numpy >= 2.4)
        start = 0
        while start < hi:
            _mask_tile(qs, ws, qi, ki, w, tau_lo, tau_hi, enc, mask, rows, rmask, local, start, T, stride_qh,
                       stride_qt, stride_kt, stride_wt, stride_mt, stride_ml, HI, DI, BLOCK_M, BLOCK_N, NB,
                       PRECISION, HOIST, True)
            start += BLOCK_N
    else:
        for start in range(0, full, BLOCK_N):
            _mask_tile(qs, ws, qi, ki, w, tau_lo, tau_hi, enc, mask, rows, rmask, local, start, T, stride_qh,
                       stride_qt, stride_kt, stride_wt, stride_mt, stride_ml, HI, DI, BLOCK_M, BLOCK_N, NB,
                       PRECISION, HOIST, False)
        for start in range(full, hi, BLOCK_N):
            _mask_tile(qs, ws, qi, ki, w, tau_lo, tau_hi, enc, mask, rows, rmask, local, start, T, stride_qh,
                       stride_qt, stride_kt, stride_wt, stride_mt, stride_ml, HI, DI, BLOCK_M, BLOCK_N, NB,
                       PRECISION, HOIST, True)
