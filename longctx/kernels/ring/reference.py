"""Plain-PyTorch ground truth for ring attention, and the block step it is built from.

``causal_attention_ref`` is single-device causal attention over the whole sequence in float64.
``block_attention_lse`` is one block of the ring: a query block against a key/value block, either
fully visible or causal (top-left aligned, equal lengths), returning the output together with its
log-sum-exp so that blocks computed separately can be merged exactly (``merge_lse``).
"""
from __future__ import annotations

import math

import torch


def _expand_kv(k: torch.Tensor, v: torch.Tensor, H: int) -> tuple[torch.Tensor, torch.Tensor]:
    group = H // k.shape[1]
    return k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)


def causal_attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """q: [B, H, n, D], k/v: [B, H_kv, n, D] -> [B, H, n, D] float64; query i sees keys 0..i."""
    out, _ = block_attention_lse(q.double(), k.double(), v.double(), causal=True)
    return out


def block_attention_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """q: [B, H, T, D], k/v: [B, H_kv, S, D] -> out [B, H, T, D], lse [B, H, T].

    Computed in float32 (float64 when q is float64). ``causal`` needs T == S and lets query i see keys
    0..i; otherwise every key is visible. ``lse`` is the natural log of the softmax denominator.
    """
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    kx, vx = _expand_kv(k.to(acc), v.to(acc), q.shape[1])
    s = (q.to(acc) @ kx.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        T, S = s.shape[-2:]
        s = s.masked_fill(torch.ones(T, S, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    return torch.softmax(s, dim=-1) @ vx, lse


def merge_lse(out: torch.Tensor, lse: torch.Tensor, blk_out: torch.Tensor,
              blk_lse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge two partial softmax attentions over disjoint key sets.

    out/blk_out: [B, H, T, D], lse/blk_lse: [B, H, T] -> (merged out, merged lse). Each part is weighted
    by exp(its lse - merged lse), i.e. its share of the combined softmax denominator.
    """
    new = torch.logaddexp(lse, blk_lse.to(lse.dtype))
    out = out * torch.exp(lse - new)[..., None] + blk_out.to(out.dtype) * torch.exp(blk_lse.to(lse.dtype) - new)[..., None]
    return out, new
