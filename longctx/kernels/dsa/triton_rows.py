"""Triton kernel of DSA selection's row stage: each row's exact top-k from the two bit masks of ``triton_mask``.

One program holds ROWS rows (one by default: the stage is latency-bound, and a one-warp program lets an SM
hold 32 of them); every step works on [ROWS, WCH] mask words or [ROWS, SCH] slots in a loop over the row, so
registers do not grow with T or CAP. Per program, rows local .. local + ROWS:

1. count both masks (``c_lo``, ``c_hi``); if ``c_hi >= K`` the hi mask is the candidate set and nothing is
   sure, else candidates = lo bits, sure = lo & hi bits, band = lo & ~hi bits;
2. expand the candidate bits in ascending key order into CID (sure keys stored as -1 - id) and the band's
   bits into BID (compact, ascending);
3. rescore the band: per step RCH band keys of each row are gathered, and one [HP, DI] x [DI, ROWS * RCH]
   tensor-core product scores them against all rows' queries (row r's heads are rows r * HI .. of the
   [HP, DI] operand); each column keeps only its own row's heads. Order-preserving int32 keys into KEY;
4. bisection for the band's need-th largest key (need = K - sure count) between the band's min and max,
   stopping as soon as a probe has exactly ``need`` band keys at or above it (~log2(band) rounds);
5. one pass over the candidate slots: sure keys, band keys above the threshold and the first ties in key
   order go to OUT in ascending key order; -1 padding.
Exactness: each row's answer is the exact top-K of its candidates (every key >= the lower threshold) under the
rescored fp32 scores, ties broken by key order; CNT holds the candidate count, and the caller redoes rows whose
count is outside [min(K, t + 1), CAP]. The band is rescored by another product shape than the mask pass used,
so one key's two fp32 scores may differ in the last bits: that matters only where the k-th and (k+1)-th scores
are tied up to rounding.
"""
from __future__ import annotations

import triton
import triton.language as tl


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
def _order_key(v):
    """fp32 -> int32 with the same order (negative floats: flip the magnitude bits); its own inverse on the bits."""
    bits = v.to(tl.int32, bitcast=True)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


@triton.jit
def _load_words(MROW, w0, last, rmask, stride_ml, WCH: tl.constexpr):
    """Mask words w0 .. w0 + WCH of ROWS rows (row pointers MROW [ROWS], last word index last [ROWS]) -> word
    indices [WCH], lo, hi [ROWS, WCH] int32, 0 past each row's last word."""
    w = w0 + tl.arange(0, WCH)
    m = rmask[:, None] & (w[None, :] <= last[:, None])
    ptr = MROW[:, None] + w[None, :]
    return w, tl.load(ptr, mask=m, other=0), tl.load(ptr + stride_ml, mask=m, other=0)


@triton.jit
def _rescore(q, wq, head_row, KI, BID, KEY, c0, n_band, srow, rmask, stride_kt, ROWS: tl.constexpr,
              DI: tl.constexpr, RCH: tl.constexpr, PRECISION: tl.constexpr):
    """Band slots c0 .. c0 + RCH of ROWS rows: gather their indexer keys, score them with one [HP, DI] x
    [DI, ROWS * RCH] product, store order keys to KEY -> (min, max) [ROWS] of the keys stored."""
    offs_c = c0 + tl.arange(0, RCH)
    m = rmask[:, None] & (offs_c[None, :] < n_band[:, None])  # [ROWS, RCH]
    ids = tl.load(BID + srow[:, None] + offs_c[None, :], mask=m, other=0)
    ids_f = tl.reshape(ids, [ROWS * RCH])
    m_f = tl.reshape(m, [ROWS * RCH])
    k = tl.load(KI + ids_f[:, None] * stride_kt + tl.arange(0, DI)[None, :], mask=m_f[:, None], other=0.0)
    d = tl.dot(q, tl.trans(k), input_precision=PRECISION)  # [HP, ROWS * RCH]
    col_row = tl.arange(0, ROWS * RCH) // RCH
    own = head_row[:, None] == col_row[None, :]
    s = tl.sum(tl.where(own, tl.maximum(d, 0.0) * wq[:, None], 0.0), 0)
    key = _order_key(tl.reshape(s, [ROWS, RCH]))
    tl.store(KEY + srow[:, None] + offs_c[None, :], key, mask=m)
    kmin = tl.min(tl.where(m, key, (1 << 31) - 1), 1)
    kmax = tl.max(tl.where(m, key, -(1 << 31)), 1)
    return kmin, kmax


@triton.jit
def _select_rows(MASK, QI, KI, W, CID, BID, KEY, CNT, OUT, n_rows, t0, stride_mb, stride_mt, stride_ml,
                  stride_qb, stride_qh, stride_qt, stride_kb, stride_kt, stride_wb, stride_wt, stride_sb, stride_st,
                  stride_cb, stride_ob, stride_ot, K, HI: tl.constexpr, DI: tl.constexpr, HP: tl.constexpr,
                  ROWS: tl.constexpr, WCH: tl.constexpr, SCH: tl.constexpr, CAP: tl.constexpr, RCH: tl.constexpr,
                  PRECISION: tl.constexpr, INTERP: tl.constexpr, UPTO: tl.constexpr = 5):
    """Rows local (ROWS per program, the last rows first) of a chunk of n_rows starting at query t0: the top-K key
    ids from the two masks MASK [B, rows, 2, words] -> OUT[b, local, :K] ascending, -1 padded; CNT[b, local] =
    the candidate count. CID, BID, KEY [B, rows, CAP] int32: scratch (same strides). UPTO < 5 stops after that
    step (a per-step time breakdown, ``benchmarks/dsa/device_run_floors.py``; step 4 leaves its threshold in CNT)."""
    pid = tl.num_programs(0) - 1 - tl.program_id(0)
    b = tl.program_id(1)
    local = pid * ROWS + tl.arange(0, ROWS)
    rmask = local < n_rows
    t = t0 + local
    last = tl.where(rmask, t // 32, -1)
    n_words = tl.max(last, 0) + 1
    mrow = MASK + b * stride_mb + local * stride_mt
    # 1. candidate counts
    c_lo = tl.zeros([ROWS], tl.int32)
    c_hi = tl.zeros([ROWS], tl.int32)
    c_sure = tl.zeros([ROWS], tl.int32)
    w0 = 0
    while w0 < n_words:
        _, lo_w, hi_w = _load_words(mrow, w0, last, rmask, stride_ml, WCH)
        c_lo += tl.sum(_popcount(lo_w), 1)
        c_hi += tl.sum(_popcount(hi_w), 1)
        c_sure += tl.sum(_popcount(lo_w & hi_w), 1)
        w0 += WCH
    use_hi = c_hi >= K  # the hi mask alone holds the top-K: it is the candidate set, nothing is sure
    n_cand = tl.where(use_hi, c_hi, c_lo)
    c_sure = tl.where(use_hi, 0, c_sure)
    tl.store(CNT + b * stride_cb + local, n_cand, mask=rmask)
    if UPTO == 1:
        return
    # 2. candidate ids in key order (sure ones as -1 - id) into CID, band ids into BID
    srow = b * stride_sb + local * stride_st
    n_slot = tl.zeros([ROWS], tl.int32)
    n_band = tl.zeros([ROWS], tl.int32)
    w0 = 0
    while w0 < n_words:
        w, lo_w, hi_w = _load_words(mrow, w0, last, rmask, stride_ml, WCH)
        cand = tl.where(use_hi[:, None], hi_w, lo_w)
        sure = tl.where(use_hi[:, None], 0, lo_w & hi_w)
        pc = _popcount(cand)
        pb = pc - _popcount(sure)
        slot = n_slot[:, None] + tl.cumsum(pc, 1) - pc
        bslot = n_band[:, None] + tl.cumsum(pb, 1) - pb
        most = tl.max(tl.max(pc, 1), 0)
        j = 0
        while j < most:
            low = cand & (0 - cand)
            is_sure = (sure & low) != 0
            kid = w[None, :] * 32 + _low_bit(cand)
            live = cand != 0
            tl.store(CID + srow[:, None] + slot, tl.where(is_sure, -1 - kid, kid), mask=live & (slot < CAP))
            tl.store(BID + srow[:, None] + bslot, kid, mask=live & ~is_sure & (bslot < CAP))
            slot += live.to(tl.int32)
            bslot += (live & ~is_sure).to(tl.int32)
            cand = cand & (cand - 1)
            j += 1
        n_slot += tl.sum(pc, 1)
        n_band += tl.sum(pb, 1)
        w0 += WCH
    n_band = tl.minimum(n_band, CAP)
    if UPTO == 2:
        return
    tl.debug_barrier()
    # 3. rescore the band: head i of the [HP, DI] operand is head i % HI of row i // HI (rows past ROWS: zero)
    offs_h = tl.arange(0, HP)
    head_row = offs_h // HI
    t_h = t0 + pid * ROWS + head_row
    hm = (head_row < ROWS) & (t_h < t0 + n_rows)
    q = tl.load(QI + b * stride_qb + (offs_h % HI)[:, None] * stride_qh + t_h[:, None] * stride_qt
                + tl.arange(0, DI)[None, :], mask=hm[:, None], other=0.0)
    wq = tl.load(W + b * stride_wb + t_h * stride_wt + offs_h % HI, mask=hm, other=0.0).to(tl.float32)
    ki = KI + b * stride_kb
    kmin = tl.full([ROWS], (1 << 31) - 1, tl.int32)
    kmax = tl.full([ROWS], -(1 << 31), tl.int32)
    band_max = tl.max(n_band, 0)
    if INTERP:  # a while loop stands in for range() with a run-time bound (numpy >= 2.4)
        c0 = 0
        while c0 < band_max:
            a, z = _rescore(q, wq, head_row, ki, BID, KEY, c0, n_band, srow, rmask, stride_kt, ROWS, DI, RCH,
                             PRECISION)
            kmin = tl.minimum(kmin, a)
            kmax = tl.maximum(kmax, z)
            c0 += RCH
    else:  # a for loop, so that the pipeliner overlaps the next step's gathers with this step's product
        for c0 in range(0, band_max, RCH):
            a, z = _rescore(q, wq, head_row, ki, BID, KEY, c0, n_band, srow, rmask, stride_kt, ROWS, DI, RCH,
                             PRECISION)
            kmin = tl.minimum(kmin, a)
            kmax = tl.maximum(kmax, z)
    if UPTO == 3:
        return
    tl.debug_barrier()
    # 4. the band's need-th largest key: bisection on [lo, hi] with count(>= hi + 1) = above; a probe with
    # exactly need keys at or above it ends the row's search (all keys >= it are chosen: exact = 1)
    need = K - c_sure
    every = n_band <= need  # the whole band is chosen
    lo = tl.where(every, -(1 << 31), kmin).to(tl.int64)
    hi = tl.where(every, -(1 << 31), kmax).to(tl.int64)
    above = tl.zeros([ROWS], tl.int32)
    exact = every
    offs = tl.arange(0, SCH)
    while tl.max(hi - lo, 0) > 0:
        mid = lo + (hi - lo + 1) // 2
        mid32 = mid.to(tl.int32)
        cnt = tl.zeros([ROWS], tl.int32)
        c0 = 0
        while c0 < band_max:
            m = rmask[:, None] & ((c0 + offs)[None, :] < n_band[:, None])
            key = tl.load(KEY + srow[:, None] + c0 + offs[None, :], mask=m, other=0)
            cnt += tl.sum((m & (key >= mid32[:, None])).to(tl.int32), 1)
            c0 += SCH
        active = lo < hi
        enough = cnt >= need
        hit = active & (cnt == need)
        above = tl.where(active & ~enough, cnt, above)
        exact = exact | hit
        hi = tl.where(active, tl.where(hit, mid, tl.where(enough, hi, mid - 1)), hi)
        lo = tl.where(active & enough, mid, lo)
    kth = lo.to(tl.int32)
    n_tie = tl.where(exact, CAP, need - above)
    if UPTO == 4:
        tl.store(CNT + b * stride_cb + local, kth + n_tie, mask=rmask)
        return
    # 5. chosen ids in key order: sure, band above kth, the first n_tie band keys equal to kth
    out = OUT + b * stride_ob + local * stride_ot
    n_out = tl.zeros([ROWS], tl.int32)
    b_seen = tl.zeros([ROWS], tl.int32)
    ties = tl.zeros([ROWS], tl.int32)
    n_valid = tl.minimum(n_cand, CAP)
    slot_max = tl.max(n_valid, 0)
    c0 = 0
    while c0 < slot_max:
        valid = rmask[:, None] & ((c0 + offs)[None, :] < n_valid[:, None])
        v = tl.load(CID + srow[:, None] + c0 + offs[None, :], mask=valid, other=0)
        sure = valid & (v < 0)
        band = valid & (v >= 0)
        band_i = band.to(tl.int32)
        brank = b_seen[:, None] + tl.cumsum(band_i, 1) - 1
        key = tl.load(KEY + srow[:, None] + brank, mask=band, other=0)
        tie = band & (key == kth[:, None])
        tie_i = tie.to(tl.int32)
        sel = sure | (band & (key > kth[:, None])) | (tie & (ties[:, None] + tl.cumsum(tie_i, 1) <= n_tie[:, None]))
        sel_i = sel.to(tl.int32)
        dst = n_out[:, None] + tl.cumsum(sel_i, 1) - 1
        tl.store(out[:, None] + dst, tl.where(sure, -1 - v, v), mask=sel & (dst < K))
        n_out += tl.sum(sel_i, 1)
        b_seen += tl.sum(band_i, 1)
        ties += tl.sum(tie_i, 1)
        c0 += SCH
    c0 = tl.min(tl.where(rmask, n_out, K), 0) // SCH * SCH
    while c0 < K:
        p = c0 + offs
        tl.store(out[:, None] + p[None, :], tl.full([ROWS, SCH], -1, tl.int32),
                 mask=rmask[:, None] & (p[None, :] >= n_out[:, None]) & (p[None, :] < K))
        c0 += SCH
