"""Triton forward kernels for causal attention with online softmax.

``_fwd``: one program per (query block, batch*head). Dense/sliding-window mode walks the key
blocks in three phases (masked window edge, unmasked middle, masked diagonal) so only edge
blocks pay for the mask; block-sparse mode walks a per-(b, h, query block) list of key-block ids
(sorted ascending, so the fully visible blocks come first and the diagonal ones last).
``_decode``: split-K flash decoding for a few queries against a long cache; partial results
(output, log-sum-exp) are merged by the caller.
"""
from __future__ import annotations

import triton
import triton.language as tl

LOG2E = 1.4426950408889634


@triton.jit
def _tile(acc, l_i, m_i, q, k_ptrs, v_ptrs, offs_n, start, p_pos, S, window, scale2,
          stride_kt, stride_vt, MASKED: tl.constexpr, HAS_WINDOW: tl.constexpr):
    """One key block: update the running max ``m_i``, normaliser ``l_i`` and accumulator ``acc``."""
    cols = start + offs_n
    if MASKED:
        kmask = cols < S
        k = tl.load(k_ptrs + start * stride_kt, mask=kmask[:, None], other=0.0)
        v = tl.load(v_ptrs + start * stride_vt, mask=kmask[:, None], other=0.0)
    else:
        k = tl.load(k_ptrs + start * stride_kt)
        v = tl.load(v_ptrs + start * stride_vt)
    # scores in base 2: log2(e) is folded into scale2 so exp2 replaces exp
    s = tl.dot(q, tl.trans(k)) * scale2
    if MASKED:
        ok = (cols[None, :] <= p_pos[:, None]) & (cols[None, :] < S)
        if HAS_WINDOW:
            ok &= cols[None, :] > p_pos[:, None] - window
        s = tl.where(ok, s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    # a row that has seen no key yet keeps m = -inf; shift by 0 there so exp2 stays finite
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.exp2(m_i - m_safe)
    p = tl.exp2(s - m_safe[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
    return acc, l_i, m_new


@triton.jit
def _span(acc, l_i, m_i, q, k_ptrs, v_ptrs, offs_n, lo, hi, p_pos, S, window, scale2, stride_kt, stride_vt,
          MASKED: tl.constexpr, HAS_WINDOW: tl.constexpr, BLOCK_N: tl.constexpr, INTERP: tl.constexpr):
    """Key blocks starting at lo, lo + BLOCK_N, ... below hi.  Under the CPU interpreter a while loop
    stands in for range(), whose run-time bounds the interpreter cannot convert with numpy >= 2.4."""
    if INTERP:
        start = lo
        while start < hi:
            acc, l_i, m_i = _tile(acc, l_i, m_i, q, k_ptrs, v_ptrs, offs_n, start, p_pos, S, window, scale2,
                                  stride_kt, stride_vt, MASKED, HAS_WINDOW)
            start += BLOCK_N
    else:
        for start in range(lo, hi, BLOCK_N):
            acc, l_i, m_i = _tile(acc, l_i, m_i, q, k_ptrs, v_ptrs, offs_n, start, p_pos, S, window, scale2,
                                  stride_kt, stride_vt, MASKED, HAS_WINDOW)
    return acc, l_i, m_i


@triton.jit
def _span_lut(acc, l_i, m_i, q, k_ptrs, v_ptrs, offs_n, lut_ptr, i_lo, i_hi, p_pos, S, scale2, stride_kt,
              stride_vt, MASKED: tl.constexpr, BLOCK_N: tl.constexpr, INTERP: tl.constexpr):
    """Key blocks listed at lut_ptr[i_lo:i_hi] (same interpreter note as _span)."""
    if INTERP:
        i = i_lo
        while i < i_hi:
            start = tl.load(lut_ptr + i) * BLOCK_N
            acc, l_i, m_i = _tile(acc, l_i, m_i, q, k_ptrs, v_ptrs, offs_n, start, p_pos, S, 0, scale2,
                                  stride_kt, stride_vt, MASKED, False)
            i += 1
    else:
        for i in range(i_lo, i_hi):
            start = tl.load(lut_ptr + i) * BLOCK_N
            acc, l_i, m_i = _tile(acc, l_i, m_i, q, k_ptrs, v_ptrs, offs_n, start, p_pos, S, 0, scale2,
                                  stride_kt, stride_vt, MASKED, False)
    return acc, l_i, m_i


@triton.jit
def _fwd(Q, K, V, O, LUT, NFULL, NCNT,
         stride_qb, stride_qh, stride_qt, stride_kb, stride_kh, stride_kt,
         stride_vb, stride_vh, stride_vt, stride_ob, stride_oh, stride_ot,
         stride_lb, stride_lh, stride_lq, H, GROUP, T, S, window, scale2,
         HEAD_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
         SPARSE: tl.constexpr, HAS_WINDOW: tl.constexpr, INTERP: tl.constexpr):
    # the last query blocks carry the most causal work: launch them first to shorten the tail
    qb = tl.num_programs(0) - 1 - tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    hk = h // GROUP
    offs_m = qb * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_D)
    q_off = S - T
    p_pos = offs_m + q_off
    q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :],
                mask=(offs_m < T)[:, None], other=0.0)
    k_ptrs = K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_kt + offs_d[None, :]
    v_ptrs = V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vt + offs_d[None, :]
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_D], tl.float32)
    if SPARSE:
        base = b * stride_lb + h * stride_lh + qb * stride_lq
        n_full = tl.load(NFULL + (b * H + h) * tl.num_programs(0) + qb)
        n_all = tl.load(NCNT + (b * H + h) * tl.num_programs(0) + qb)
        acc, l_i, m_i = _span_lut(acc, l_i, m_i, q, k_ptrs, v_ptrs, offs_n, LUT + base, 0, n_full, p_pos, S,
                                  scale2, stride_kt, stride_vt, False, BLOCK_N, INTERP)
        acc, l_i, m_i = _span_lut(acc, l_i, m_i, q, k_ptrs, v_ptrs, offs_n, LUT + base, n_full, n_all, p_pos, S,
                                  scale2, stride_kt, stride_vt, True, BLOCK_N, INTERP)
    else:
        m0 = qb * BLOCK_M + q_off
        hi = tl.minimum(S, m0 + BLOCK_M)
        lo = 0
        full_lo = 0
        if HAS_WINDOW:
            lo = tl.maximum(0, m0 - window + 1) // BLOCK_N * BLOCK_N
            full_lo = tl.maximum(lo, tl.cdiv(m0 + BLOCK_M - window, BLOCK_N) * BLOCK_N)
        full_hi = (m0 + 1) // BLOCK_N * BLOCK_N
        has_middle = (full_lo < full_hi).to(tl.int32)
        a_end = lo + has_middle * (full_lo - lo)
        b_end = lo + has_middle * (full_hi - lo)
        acc, l_i, m_i = _span(acc, l_i, m_i, q, k_ptrs, v_ptrs, offs_n, lo, a_end, p_pos, S, window, scale2,
                              stride_kt, stride_vt, True, HAS_WINDOW, BLOCK_N, INTERP)
        acc, l_i, m_i = _span(acc, l_i, m_i, q, k_ptrs, v_ptrs, offs_n, a_end, b_end, p_pos, S, window, scale2,
                              stride_kt, stride_vt, False, False, BLOCK_N, INTERP)
        acc, l_i, m_i = _span(acc, l_i, m_i, q, k_ptrs, v_ptrs, offs_n, b_end, hi, p_pos, S, window, scale2,
                              stride_kt, stride_vt, True, HAS_WINDOW, BLOCK_N, INTERP)
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    tl.store(O + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_ot + offs_d[None, :],
             out.to(O.dtype.element_ty), mask=(offs_m < T)[:, None])


@triton.jit
def _decode(Q, K, V, O, LSE, stride_qb, stride_qh, stride_qt, stride_kb, stride_kh, stride_kt,
            stride_vb, stride_vh, stride_vt, H, GROUP, T, S, window, scale2, CHUNK,
            HEAD_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HAS_WINDOW: tl.constexpr,
            INTERP: tl.constexpr):
    """Program (b*h, split): all T queries against keys [split*CHUNK, (split+1)*CHUNK); writes fp32
    partial output O[b, h, split, t, :] and base-2 log-sum-exp LSE[b, h, split, t]."""
    bh = tl.program_id(0)
    sp = tl.program_id(1)
    nsp = tl.num_programs(1)
    b = bh // H
    h = bh % H
    hk = h // GROUP
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_D)
    p_pos = offs_m + (S - T)
    q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :],
                mask=(offs_m < T)[:, None], other=0.0)
    k_ptrs = K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_kt + offs_d[None, :]
    v_ptrs = V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vt + offs_d[None, :]
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_D], tl.float32)
    lo = sp * CHUNK
    hi = tl.minimum(S, lo + CHUNK)
    acc, l_i, m_i = _span(acc, l_i, m_i, q, k_ptrs, v_ptrs, offs_n, lo, hi, p_pos, S, window, scale2,
                          stride_kt, stride_vt, True, HAS_WINDOW, BLOCK_N, INTERP)
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    lse = tl.where(l_i == 0.0, float("-inf"), m_i + tl.log2(tl.where(l_i == 0.0, 1.0, l_i)))
    row = (bh * nsp + sp) * BLOCK_M + offs_m
    tl.store(O + row[:, None] * HEAD_D + offs_d[None, :], out)
    tl.store(LSE + row, lse)
