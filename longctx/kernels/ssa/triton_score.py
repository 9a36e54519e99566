"""Triton kernel for one level of SSA's top-down search: bound scores of listed nodes for a query block.

``_bound_scores``: one program per (query block, batch * head). It loads the first HEAD_D channels of the
block's queries once, optionally zeroes each query's channels below TRUNC times its RMS over them (and with
QNORM scales each query to unit norm over them), splits
them into positive and negative parts, and walks the block's candidate node list in tiles of BLOCK_C:
gathers each node's centred per-channel bounds ``[kmax - mean kmax | kmin - mean kmin]`` (a row of 2D),
scores ``q+ . kmax' + q- . kmin'`` with two small matmuls, and keeps the max over the block's queries.
Only ``[nQB, C]`` scores are written: the gathered bounds and the ``[block, C]`` scores stay on chip.

``_exact_scores``: the optional second pass at the leaves, the same walk over candidate key blocks with the
block's keys themselves in place of their bounds: the exact ``max q . k`` over the two blocks.
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _bound_scores(Q, S, CAND, OUT, stride_qb, stride_qh, stride_qt, stride_sb, stride_sh, stride_sn,
                  stride_cb, stride_ch, stride_cq, stride_ob, stride_oh, stride_oq, H, GROUP, T,
                  NC: tl.constexpr, HEAD_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
                  TRUNC: tl.constexpr, QNORM: tl.constexpr, PRECISION: tl.constexpr):
    qb = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    hk = h // GROUP
    rows = qb * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_D)
    offs_c = tl.arange(0, BLOCK_C)
    row_ok = rows < T
    q = tl.load(Q + b * stride_qb + h * stride_qh + rows[:, None] * stride_qt + offs_d[None, :],
                mask=row_ok[:, None], other=0.0)
    if TRUNC > 0:  # drop the channels below TRUNC * RMS of each query's HEAD_D channels
        qf = q.to(tl.float32)
        thr = TRUNC * tl.sqrt(tl.sum(qf * qf, 1) / HEAD_D)
        q = tl.where(tl.abs(qf) >= thr[:, None], q, tl.zeros_like(q))
    if QNORM:  # unit norm per query: every query's score has the same noise scale before the max
        qf = q.to(tl.float32)
        nrm = tl.maximum(tl.sqrt(tl.sum(qf * qf, 1)), 1e-20)
        q = (qf / nrm[:, None]).to(q.dtype)
    q_pos = tl.maximum(q, 0.0).to(q.dtype)
    q_neg = tl.minimum(q, 0.0).to(q.dtype)
    s_base = S + b * stride_sb + hk * stride_sh
    c_base = CAND + b * stride_cb + h * stride_ch + qb * stride_cq
    o_base = OUT + b * stride_ob + h * stride_oh + qb * stride_oq
    for c0 in range(0, NC, BLOCK_C):
        cols = c0 + offs_c
        ids = tl.load(c_base + cols, mask=cols < NC, other=-1)
        valid = ids >= 0
        rows_s = s_base + ids[:, None] * stride_sn + offs_d[None, :]
        hi = tl.load(rows_s, mask=valid[:, None], other=0.0)
        lo = tl.load(rows_s + HEAD_D, mask=valid[:, None], other=0.0)
        s = tl.dot(q_pos, tl.trans(hi), input_precision=PRECISION)
        s += tl.dot(q_neg, tl.trans(lo), input_precision=PRECISION)
        s = tl.where(row_ok[:, None], s, float("-inf"))
        best = tl.where(valid, tl.max(s, 0), float("-inf"))
        tl.store(o_base + cols, best, mask=cols < NC)


@triton.jit
def _exact_scores(Q, K, CAND, OUT, stride_qb, stride_qh, stride_qt, stride_kb, stride_kh, stride_kt,
                  stride_cb, stride_ch, stride_cq, stride_ob, stride_oh, stride_oq, H, GROUP, T,
                  NC: tl.constexpr, HEAD_D: tl.constexpr, BLOCK_M: tl.constexpr, PRECISION: tl.constexpr):
    """Second pass at the leaves: for each listed key block, the exact max of q . k over the query block's
    queries and the key block's keys (first HEAD_D channels of Q, i.e. the identity basis)."""
    qb = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    hk = h // GROUP
    rows = qb * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_D)
    row_ok = rows < T
    q = tl.load(Q + b * stride_qb + h * stride_qh + rows[:, None] * stride_qt + offs_d[None, :],
                mask=row_ok[:, None], other=0.0)
    k_base = K + b * stride_kb + hk * stride_kh
    c_base = CAND + b * stride_cb + h * stride_ch + qb * stride_cq
    o_base = OUT + b * stride_ob + h * stride_oh + qb * stride_oq
    for c in range(0, NC):
        kid = tl.load(c_base + c)
        keys = kid * BLOCK_M + tl.arange(0, BLOCK_M)
        key_ok = (keys >= 0) & (keys < T)  # an unused slot (-1) lists keys -BLOCK_M..-1
        kk = tl.load(k_base + keys[:, None] * stride_kt + offs_d[None, :], mask=key_ok[:, None], other=0.0)
        s = tl.dot(q, tl.trans(kk), input_precision=PRECISION)
        s = tl.where(row_ok[:, None] & key_ok[None, :], s, float("-inf"))
        tl.store(o_base + c, tl.max(tl.max(s, 1), 0))
