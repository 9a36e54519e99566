"""Plain-PyTorch ground truth for HyperAttention's estimator, given a plan from ``kernels.hyper.lsh``.

Query i (sorted block a) sees, with weight 1, the keys of sorted key block a at positions <= its own,
and, with weight T / m, each sampled key at a position <= its own that is not in block a. The output
is the weighted softmax average of values, computed densely in float64.
"""
from __future__ import annotations

import math

import torch

from longctx.kernels.hyper.lsh import HyperPlan


def hyper_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: HyperPlan, block_size: int) -> torch.Tensor:
    """q: [B, H, T, D], k/v: [B, H_kv, T, D] -> [B, H, T, D] in q's dtype."""
    B, H, T, D = q.shape
    group = H // k.shape[1]
    ar = torch.arange(T, device=q.device)
    q_blk = torch.empty_like(plan.q_perm).scatter_(-1, plan.q_perm, (ar // block_size).expand(B, H, T))
    k_blk = torch.empty_like(plan.k_perm).scatter_(-1, plan.k_perm, (ar // block_size).expand(*plan.k_perm.shape))
    k_blk = k_blk.repeat_interleave(group, 1)
    causal = ar[None, :] <= ar[:, None]
    same = q_blk[..., :, None] == k_blk[..., None, :]
    sampled = torch.zeros(T, dtype=torch.bool, device=q.device)
    sampled[plan.samples] = True
    logw = torch.full((B, H, T, T), float("-inf"), dtype=torch.float64, device=q.device)
    logw = logw.masked_fill(sampled & ~same & causal, plan.log_weight)
    logw = logw.masked_fill(same & causal, 0.0)
    kd, vd = (x.double().repeat_interleave(group, 1) for x in (k, v))
    s = (q.double() @ kd.transpose(-1, -2)) / math.sqrt(D) + logw
    return (torch.softmax(s, -1).nan_to_num(0.0) @ vd).to(q.dtype)
