"""Triton kernels for DSA selection v4: survivors as bits, not as scattered (score, key) pairs.

``dsa_select`` (``kernels.dsa.ops``, ``Tiles.version == 4``) runs per row chunk:
1. ``_sample_tau2``: two thresholds per row from every ``step``-th key's score (``_indexer``): ``tau_lo``
   (about 1.5 topk of the row's scores should pass) and ``tau_hi`` (about 0.75 topk should pass), by a
   bisection on the score value (the thresholds only need to fall near those ranks; exactness never
   depends on where they fall);
2. ``_mask_above``: one program per (query tile, batch) recomputes the scores tile by tile and writes, per
   (row, key), two bits: ``s >= tau_lo`` and ``s >= tau_hi``. The bits are packed into bytes by one small
   tensor-core product of the per-score code (0, 1 or 257) with a [BLOCK_N, 16] matrix of powers of two
   (exact in fp32), which stays in the accumulator layout: no per-score store, no layout conversion of the
   score tile. Per tile it stores BLOCK_M x BLOCK_N / 8 bytes per level;
3. ``_select_rows``: one program per row counts both masks (``c_lo``, ``c_hi``); the keys with
   ``s >= tau_hi`` are sure members of the top-k when ``c_hi < topk``, and only the "band" between the two
   thresholds needs exact scores: it expands the set bits into ascending key ids, rescores the band keys
   (a gather of their indexer keys, one tensor-core product per chunk), finds the band's exact
   (topk - c_hi)-th largest by bisection on the order-preserving int32 image of the fp32 scores, and writes
   the chosen ids in ascending order, -1 padded. If ``c_hi >= topk`` the hi mask is the candidate set, all
   rescored. It records each row's candidate count; the caller redoes rows whose count is outside
   [min(topk, t + 1), CAP] exactly.
Exactness: a row's answer is the exact top-k of its candidates (every key >= the lower threshold used), so
it equals torch.topk's whenever the count check passes and the row has no tie at the k-th score. The band
is rescored by a different tensor-core product than the fused pass used, so the two fp32 values of one key
may differ in the last bits; that can change the answer only where the k-th and (k+1)-th scores are that
close (a tie up to rounding).
"""
from __future__ import annotations

import triton
import triton.language as tl

from longctx.kernels.dsa.triton_dsa import _index_tile, _load_queries
from longctx.kernels.dsa.triton_topk import _order_key


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
    # 8j..8j+7, the next byte their hi bits (at most 65535: exact in fp32; fp16 operands, see _gather_above)
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


@triton.jit
def _popcount(x):
    """Set bits of each int32 (sign bit included)."""
    x = x - ((x >> 1) & 0x55555555)
    x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F
    return (x & 255) + ((x >> 8) & 255) + ((x >> 16) & 255) + ((x >> 24) & 255)


@triton.jit
def _low_bit(x):
    """Index (0..31) of the lowest set bit of each nonzero int32, via the exponent of its power of two as fp32."""
    low = (x & (0 - x)).to(tl.uint32, bitcast=True).to(tl.float32)
    return (low.to(tl.int32, bitcast=True) >> 23) - 127


@triton.jit
def _rescore(q, wt, KI, BID, BVAL, c0, n_band, stride_kt, DI: tl.constexpr, RCH: tl.constexpr, PRECISION: tl.constexpr):
    """Exact scores of band slots [c0, c0 + RCH): gather their indexer keys, one [HP, DI] x [DI, RCH] product."""
    offs_c = c0 + tl.arange(0, RCH)
    cm = offs_c < n_band
    ids = tl.load(BID + offs_c, mask=cm, other=0)
    k = tl.load(KI + ids[:, None] * stride_kt + tl.arange(0, DI)[None, :], mask=cm[:, None], other=0.0)
    d = tl.dot(q, tl.trans(k), input_precision=PRECISION)
    tl.store(BVAL + offs_c, tl.sum(tl.maximum(d, 0.0) * wt[:, None], 0), mask=cm)


@triton.jit
def _select_rows(MASK, QI, KI, W, CID, BID, BVAL, CNT, OUT, row0, t0, stride_mb, stride_mt, stride_ml,
                 stride_qb, stride_qh, stride_qt, stride_kb, stride_kt, stride_wb, stride_wt, stride_sb, stride_st,
                 stride_cb, stride_ob, stride_ot, K, HI: tl.constexpr, DI: tl.constexpr, HP: tl.constexpr,
                 NW: tl.constexpr, CAP: tl.constexpr, RCH: tl.constexpr, PRECISION: tl.constexpr,
                 INTERP: tl.constexpr):
    """Row local = row0 + program_id(0) (query t0 + local): its top-K key ids from the two masks (see the module
    docstring) -> OUT[b, local, :K]; CNT[b, local] = the candidate count. CID, BID, BVAL [B, rows, CAP]: scratch."""
    local = row0 + tl.program_id(0)
    b = tl.program_id(1)
    t = t0 + local
    # 1. both masks as int32 words: bit j of word i = key 32 i + j (little-endian bytes)
    offs_w = tl.arange(0, NW)
    wmask = offs_w <= t // 32
    mrow = MASK + b * stride_mb + local * stride_mt
    lo_w = tl.load(mrow + offs_w, mask=wmask, other=0)
    hi_w = tl.load(mrow + stride_ml + offs_w, mask=wmask, other=0)
    pc_lo = _popcount(lo_w)
    pc_hi = _popcount(hi_w)
    c_hi = tl.sum(pc_hi, 0)
    use_hi = c_hi >= K  # the hi mask alone holds the top-K: rescore all of it, nothing is sure
    cand = tl.where(use_hi, hi_w, lo_w)
    pc = tl.where(use_hi, pc_hi, pc_lo)
    n_cand = tl.sum(pc, 0)
    tl.store(CNT + b * stride_cb + local, n_cand)
    # 2. candidate ids in ascending key order: word i's j-th lowest set bit goes to slot base[i] + j
    base = tl.cumsum(pc, 0) - pc
    cid_row = CID + b * stride_sb + local * stride_st
    most = tl.max(pc, 0)
    j = 0
    while j < most:
        bit = _low_bit(cand)
        tl.store(cid_row + base + j, offs_w * 32 + bit, mask=(cand != 0) & (base + j < CAP))
        cand = cand & (cand - 1)
        j += 1
    tl.debug_barrier()
    offs = tl.arange(0, CAP)
    valid = offs < n_cand
    cid = tl.load(cid_row + offs, mask=valid, other=0)
    # 3. sure (hi bit, unless the hi mask is the candidate set) or band; band ids compacted, in key order
    # the scalar test broadcast to a block first: Triton 3.9's interpreter gives `block & (scalar < K)` int32 data
    hw = tl.load(mrow + stride_ml + cid // 32, mask=valid & ((tl.zeros_like(offs) + c_hi) < K), other=0)
    sure = valid & (((hw >> (cid % 32)) & 1) != 0)
    band = valid & ~sure
    brank = tl.cumsum(band.to(tl.int32), 0) - 1
    n_band = tl.sum(band.to(tl.int32), 0)
    need = K - tl.sum(sure.to(tl.int32), 0)
    bid_row = BID + b * stride_sb + local * stride_st
    bval_row = BVAL + b * stride_sb + local * stride_st
    tl.store(bid_row + brank, cid, mask=band)
    tl.debug_barrier()
    # 4. exact scores of the band: all heads' queries of row t as one [HP, DI] operand (rows >= HI zero)
    offs_h = tl.arange(0, HP)
    offs_d = tl.arange(0, DI)
    q = tl.load(QI + b * stride_qb + offs_h[:, None] * stride_qh + t * stride_qt + offs_d[None, :],
                mask=(offs_h < HI)[:, None], other=0.0)
    wt = tl.load(W + b * stride_wb + t * stride_wt + offs_h, mask=offs_h < HI, other=0.0).to(tl.float32)
    ki = KI + b * stride_kb
    if INTERP:  # a while loop stands in for range() with a run-time bound (numpy >= 2.4)
        c0 = 0
        while c0 < n_band:
            _rescore(q, wt, ki, bid_row, bval_row, c0, n_band, stride_kt, DI, RCH, PRECISION)
            c0 += RCH
    else:  # a for loop, so that the pipeliner overlaps the next chunk's gather with this chunk's product
        for c0 in range(0, n_band, RCH):
            _rescore(q, wt, ki, bid_row, bval_row, c0, n_band, stride_kt, DI, RCH, PRECISION)
    tl.debug_barrier()
    # 5. the band's need-th largest (bisection between its min and max key), then the chosen ids in key order
    bv = tl.load(bval_row + offs, mask=offs < n_band, other=0.0)
    bkey = tl.where(offs < n_band, _order_key(bv), -(1 << 31))
    lo = tl.min(tl.where(offs < n_band, bkey, (1 << 31) - 1), 0).to(tl.int64)
    hi = tl.max(bkey, 0).to(tl.int64)
    while lo < hi:
        mid = lo + (hi - lo + 1) // 2
        enough = tl.sum((bkey >= mid.to(tl.int32)).to(tl.int32), 0) >= need
        lo = tl.where(enough, mid, lo)
        hi = tl.where(enough, hi, mid - 1)
    kth = lo.to(tl.int32)
    ckey = tl.load(bval_row + brank, mask=band, other=0.0)
    ckey = tl.where(band, _order_key(ckey), -(1 << 31))
    above = band & (ckey > kth)
    tie = band & (ckey == kth)
    n_tie = need - tl.sum(above.to(tl.int32), 0)
    sel = sure | above | (tie & (tl.cumsum(tie.to(tl.int32), 0) <= n_tie))
    sel = tl.where(n_band <= need, valid, sel)
    dst = tl.cumsum(sel.to(tl.int32), 0) - 1
    out = OUT + b * stride_ob + local * stride_ot
    tl.store(out + dst, cid, mask=sel)
    pad = (offs >= tl.sum(sel.to(tl.int32), 0)) & (offs < K)
    tl.store(out + offs, tl.full([CAP], -1, tl.int32), mask=pad)
