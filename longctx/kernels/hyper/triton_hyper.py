"""Triton forward kernel for HyperAttention: block-diagonal attention in LSH-sorted order plus sampled columns.

One program per (sorted query block, batch * head). It attends to the same-index block of the sorted
keys, then to the ``NSAMP`` sampled keys (log-weight ``log(T / m)`` added to their scores, and skipped
when they already sit in the program's own key block); causality is checked on original positions
throughout, and each output row is written back at its original position.
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _online(acc, l_i, m_i, s, v):
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.exp2(m_i - m_safe)
    p = tl.exp2(s - m_safe[:, None])
    return acc * alpha[:, None] + tl.dot(p.to(v.dtype), v), l_i * alpha + tl.sum(p, 1), m_new


@triton.jit
def _hyper_fwd(Q, K, V, O, QP, KP, SP, SB, stride_qb, stride_qh, stride_qt, stride_kb, stride_kh, stride_kt,
               stride_ob, stride_oh, stride_ot, H, H_KV, T, scale2, logw2,
               NSAMP: tl.constexpr, HEAD_D: tl.constexpr, BLOCK: tl.constexpr, BLOCK_N: tl.constexpr):
    blk = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    hk = h // (H // H_KV)
    rows = blk * BLOCK + tl.arange(0, BLOCK)
    offs_d = tl.arange(0, HEAD_D)
    rmask = rows < T
    qpos = tl.load(QP + bh * T + rows, mask=rmask, other=0)
    q = tl.load(Q + b * stride_qb + h * stride_qh + qpos[:, None] * stride_qt + offs_d[None, :],
                mask=rmask[:, None], other=0.0)
    kbase = K + b * stride_kb + hk * stride_kh
    vbase = V + b * stride_kb + hk * stride_kh
    kpos = tl.load(KP + (b * H_KV + hk) * T + rows, mask=rmask, other=0)
    k = tl.load(kbase + kpos[:, None] * stride_kt + offs_d[None, :], mask=rmask[:, None], other=0.0)
    v = tl.load(vbase + kpos[:, None] * stride_kt + offs_d[None, :], mask=rmask[:, None], other=0.0)
    s = tl.dot(q, tl.trans(k)) * scale2
    s = tl.where((kpos[None, :] <= qpos[:, None]) & rmask[None, :], s, float("-inf"))
    m_i = tl.full([BLOCK], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK], tl.float32)
    acc = tl.zeros([BLOCK, HEAD_D], tl.float32)
    acc, l_i, m_i = _online(acc, l_i, m_i, s, v)
    offs_n = tl.arange(0, BLOCK_N)
    for start in range(0, NSAMP, BLOCK_N):
        cols = start + offs_n
        cmask = cols < NSAMP
        spos = tl.load(SP + cols, mask=cmask, other=0)
        sblk = tl.load(SB + (b * H_KV + hk) * NSAMP + cols, mask=cmask, other=-1)
        ks = tl.load(kbase + spos[:, None] * stride_kt + offs_d[None, :], mask=cmask[:, None], other=0.0)
        vs = tl.load(vbase + spos[:, None] * stride_kt + offs_d[None, :], mask=cmask[:, None], other=0.0)
        # each sampled column stands for T / NSAMP keys: add log2(T / NSAMP) to its base-2 score
        ss = tl.dot(q, tl.trans(ks)) * scale2 + logw2
        ok = (spos[None, :] <= qpos[:, None]) & cmask[None, :] & (sblk[None, :] != blk)
        acc, l_i, m_i = _online(acc, l_i, m_i, tl.where(ok, ss, float("-inf")), vs)
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    tl.store(O + b * stride_ob + h * stride_oh + qpos[:, None] * stride_ot + offs_d[None, :],
             out.to(O.dtype.element_ty), mask=rmask[:, None])
