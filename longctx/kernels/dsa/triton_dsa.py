"""Triton kernels for DeepSeek Sparse Attention: lightning-indexer scoring and attention over selected tokens.

``_indexer``: one program per (query tile, key tile, batch) of a row chunk; it loops over the few
indexer heads, so a score matrix is written once, in fp32, and never per head (``lightning_indexer``
and the sampled thresholds of ``dsa_select``). ``_index_tile`` is the score arithmetic, shared with the
mask pass in ``triton_mask`` (which can hold a tile's queries, ``_load_queries``, across its key loop). This is
the honestly O(n^2) part of DSA.
``_sparse_attn``: one program per (query token, batch * kv head) serves every query head of the
group (GQA), gathering the selected key/value rows in tiles of BLOCK_N with an online softmax.
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _head_query(QI, W, j, rows, rmask, stride_qh, stride_qt, stride_wt, DI: tl.constexpr):
    """Indexer head j of rows ``rows``: queries [BLOCK_M, DI] as stored, weights [BLOCK_M] in fp32."""
    offs_d = tl.arange(0, DI)
    q = tl.load(QI + j * stride_qh + rows[:, None] * stride_qt + offs_d[None, :], mask=rmask[:, None], other=0.0)
    return q, tl.load(W + rows * stride_wt + j, mask=rmask, other=0.0).to(tl.float32)


@triton.jit
def _load_queries(QI, W, rows, rmask, stride_qh, stride_qt, stride_wt, HI: tl.constexpr, DI: tl.constexpr):
    """``_head_query`` of every head, as two tuples (queries, weights), to keep on chip across a key loop."""
    qs = ()
    ws = ()
    for j in tl.static_range(HI):
        q, wj = _head_query(QI, W, j, rows, rmask, stride_qh, stride_qt, stride_wt, DI)
        qs = qs + (q,)
        ws = ws + (wj,)
    return qs, ws


@triton.jit
def _index_tile(qs, ws, QI, W, k, rows, rmask, stride_qh, stride_qt, stride_wt, HI: tl.constexpr, DI: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr, HOIST: tl.constexpr):
    """Scores [BLOCK_M, BLOCK_N] of query rows ``rows`` against key tile k [BLOCK_N, DI]; the queries come from
    ``qs, ws`` (``_load_queries``) if HOIST, else head by head from QI, W (already offset to the batch)."""
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    for j in tl.static_range(HI):
        if HOIST:
            q, wj = qs[j], ws[j]
        else:
            q, wj = _head_query(QI, W, j, rows, rmask, stride_qh, stride_qt, stride_wt, DI)
        acc += tl.maximum(tl.dot(q, tl.trans(k), input_precision=PRECISION), 0.0) * wj[:, None]
    return acc


@triton.jit
def _indexer(QI, KI, W, OUT, stride_qb, stride_qh, stride_qt, stride_kb, stride_kt, stride_wb, stride_wt,
             stride_ob, stride_ot, n_cols, t0, t1, COL_STEP: tl.constexpr, HI: tl.constexpr, DI: tl.constexpr,
             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    """Rows [t0, t1) against the n_cols rows of KI, which hold key positions 0, COL_STEP, 2 * COL_STEP, ..."""
    pm = tl.program_id(0)
    pn = tl.program_id(1)
    b = tl.program_id(2)
    rows = t0 + pm * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pn * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, DI)
    rmask = rows < t1
    cmask = cols < n_cols
    k = tl.load(KI + b * stride_kb + cols[:, None] * stride_kt + offs_d[None, :], mask=cmask[:, None], other=0.0)
    acc = _index_tile(0, 0, QI + b * stride_qb, W + b * stride_wb, k, rows, rmask, stride_qh, stride_qt, stride_wt,
                      HI, DI, BLOCK_M, BLOCK_N, PRECISION, False)
    acc = tl.where(cols[None, :] * COL_STEP <= rows[:, None], acc, float("-inf"))
    tl.store(OUT + b * stride_ob + (rows - t0)[:, None] * stride_ot + cols[None, :], acc,
             mask=rmask[:, None] & cmask[None, :])


@triton.jit
def _sparse_attn(Q, K, V, IDX, O, stride_qb, stride_qh, stride_qt, stride_kb, stride_kh, stride_kt,
                 stride_vb, stride_vh, stride_vt, stride_ib, stride_it, stride_ob, stride_oh, stride_ot,
                 H_KV, GROUP, scale2, KSEL: tl.constexpr, HEAD_D: tl.constexpr, BLOCK_G: tl.constexpr,
                 BLOCK_N: tl.constexpr):
    t = tl.program_id(0)
    bk = tl.program_id(1)
    b = bk // H_KV
    hk = bk % H_KV
    offs_g = tl.arange(0, BLOCK_G)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_D)
    gmask = offs_g < GROUP
    heads = hk * GROUP + offs_g
    q = tl.load(Q + b * stride_qb + heads[:, None] * stride_qh + t * stride_qt + offs_d[None, :],
                mask=gmask[:, None], other=0.0)
    m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, HEAD_D], tl.float32)
    for start in range(0, KSEL, BLOCK_N):
        sel = start + offs_n
        ids = tl.load(IDX + b * stride_ib + t * stride_it + sel, mask=sel < KSEL, other=-1)
        valid = ids >= 0
        k = tl.load(K + b * stride_kb + hk * stride_kh + ids[:, None] * stride_kt + offs_d[None, :],
                    mask=valid[:, None], other=0.0)
        v = tl.load(V + b * stride_vb + hk * stride_vh + ids[:, None] * stride_vt + offs_d[None, :],
                    mask=valid[:, None], other=0.0)
        # base-2 scores: log2(e) folded into scale2
        s = tl.where(valid[None, :], tl.dot(q, tl.trans(k)) * scale2, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_safe)
        p = tl.exp2(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    tl.store(O + b * stride_ob + heads[:, None] * stride_oh + t * stride_ot + offs_d[None, :],
             out.to(O.dtype.element_ty), mask=gmask[:, None])
