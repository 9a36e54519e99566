"""Plain-PyTorch ground truth for DeepSeek Sparse Attention (V3.2): lightning indexer, top-k, sparse attention.

Indexer score ``I[t, s] = sum_j w[t, j] * relu(q_I[j, t] . k_I[s])`` for ``s <= t`` (causal), computed
in float64. Each query keeps its ``topk`` highest-scoring keys (all of them while ``t + 1 <= topk``)
and attends, in every head, to those keys only.
"""
from __future__ import annotations

import math

import torch


def indexer_ref(q_idx: torch.Tensor, k_idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """q_idx: [B, HI, T, DI], k_idx: [B, T, DI], w: [B, T, HI] -> float64 scores [B, T, T], -inf above the diagonal."""
    T = q_idx.shape[2]
    s = torch.einsum("bhtd,bsd->bhts", q_idx.double(), k_idx.double()).relu()
    s = torch.einsum("bhts,bth->bts", s, w.double())
    future = torch.ones(T, T, dtype=torch.bool, device=s.device).triu(1)
    return s.masked_fill(future, float("-inf"))


def select_ref(q_idx: torch.Tensor, k_idx: torch.Tensor, w: torch.Tensor, topk: int) -> torch.Tensor:
    """-> [B, T, topk] int64 key indices per query, ascending, -1 where the query has fewer than topk keys."""
    s = indexer_ref(q_idx, k_idx, w)
    k = min(topk, s.shape[-1])
    val, idx = s.topk(k, dim=-1)
    idx = torch.where(val == float("-inf"), -1, idx)
    idx = torch.where(idx < 0, torch.iinfo(torch.int64).max, idx).sort(-1).values
    idx = torch.where(idx == torch.iinfo(torch.int64).max, -1, idx)
    if k < topk:
        idx = torch.cat([idx, idx.new_full((*idx.shape[:2], topk - k), -1)], -1)
    return idx


def sparse_attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """q: [B, H, T, D], k/v: [B, H_kv, S, D], idx: [B, T, K] (-1 unused) -> [B, H, T, D] in q's dtype."""
    B, H, T, D = q.shape
    S = k.shape[2]
    group = H // k.shape[1]
    mask = torch.zeros(B, T, S + 1, dtype=torch.bool, device=q.device)
    mask.scatter_(2, torch.where(idx < 0, S, idx).long(), True)
    mask = mask[:, None, :, :S]
    kd, vd = (x.double().repeat_interleave(group, 1) for x in (k, v))
    s = (q.double() @ kd.transpose(-1, -2)) / math.sqrt(D)
    p = torch.softmax(s.masked_fill(~mask, float("-inf")), -1).nan_to_num(0.0)
    return (p @ vd).to(q.dtype)


def dsa_ref(q, k, v, q_idx, k_idx, w, topk: int = 2048) -> torch.Tensor:
    """Indexer, top-k and sparse attention end to end -> [B, H, T, D]."""
    return sparse_attention_ref(q, k, v, select_ref(q_idx, k_idx, w, topk))
