"""Plain-PyTorch ground truth for the flash family: causal softmax attention under a boolean mask.

Computes in float64 and returns the input dtype. Queries sit at the last ``T`` positions of the
``S`` keys (``q_offset = S - T``), so one function covers prefill, decode, windows and block lists.
A query row that may see no key returns zeros.
"""
from __future__ import annotations

import math

import torch


def causal_mask(T: int, S: int, window: int | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[T, S]`` bool: query ``i`` (position ``S - T + i``) sees keys ``(p - window, p]``."""
    p = torch.arange(T, device=device)[:, None] + (S - T)
    j = torch.arange(S, device=device)[None, :]
    mask = j <= p
    if window is not None:
        mask &= j > p - window
    return mask


def block_mask(block_idx: torch.Tensor, T: int, block_size: int) -> torch.Tensor:
    """``block_idx: [B, H, nQB, K]`` (key-block ids, -1 = unused) -> ``[B, H, T, T]`` bool, causal."""
    B, H, nqb, _ = block_idx.shape
    nkb = -(-T // block_size)
    sel = torch.zeros(B, H, nqb, nkb + 1, dtype=torch.bool, device=block_idx.device)
    sel.scatter_(3, torch.where(block_idx < 0, nkb, block_idx).long(), True)
    sel = sel[..., :nkb]
    tok = torch.arange(T, device=block_idx.device) // block_size
    mask = sel[:, :, tok][:, :, :, tok]
    return mask & causal_mask(T, T, device=block_idx.device)


def attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                  window: int | None = None) -> torch.Tensor:
    """q: [B, H, T, D], k/v: [B, H_kv, S, D], mask broadcastable to [B, H, T, S] (default causal) -> [B, H, T, D]."""
    _, H, T, D = q.shape
    S, group = k.shape[2], H // k.shape[1]
    qd, kd, vd = (x.double() for x in (q, k, v))
    kd, vd = kd.repeat_interleave(group, 1), vd.repeat_interleave(group, 1)
    if mask is None:
        mask = causal_mask(T, S, window, q.device)
    s = (qd @ kd.transpose(-1, -2)) / math.sqrt(D)
    s = s.masked_fill(~mask, float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)
    return (p @ vd).to(q.dtype)
