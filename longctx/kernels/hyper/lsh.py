"""HyperAttention's plan: sorted angular LSH of queries and keys, and the uniformly sampled key columns.

Each kv head draws ``n_bits`` random hyperplanes (seeded); a vector's bucket is the Gray-code rank of
its sign pattern, so neighbouring buckets differ in one hyperplane. Queries (with their kv head's
planes) and keys are stably sorted by bucket. Every sampled key stands for ``T / n_samples`` keys.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class HyperPlan:
    """q_perm: [B, H, T], k_perm: [B, H_kv, T] (original positions in sorted order); samples: [m] positions,
    ascending; sample_block: [B, H_kv, m] (each sample's block in the sorted key order); log_weight: log(T / m)."""

    q_perm: torch.Tensor
    k_perm: torch.Tensor
    samples: torch.Tensor
    sample_block: torch.Tensor
    log_weight: float


def _gray_rank(bits: torch.Tensor) -> torch.Tensor:
    """bits: [..., n] in {0, 1}, read as a Gray code (bit 0 most significant) -> its rank in the Gray sequence."""
    binary = torch.cumsum(bits, -1) % 2
    weights = 2 ** torch.arange(bits.shape[-1] - 1, -1, -1, device=bits.device)
    return (binary * weights).sum(-1)


def make_plan(q: torch.Tensor, k: torch.Tensor, block_size: int, n_samples: int, n_bits: int = 8,
              seed: int = 0) -> HyperPlan:
    """q: [B, H, T, D], k: [B, H_kv, T, D] -> the sorted orders and samples (deterministic in seed)."""
    B, H, T, D = q.shape
    Hk = k.shape[1]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    planes = torch.randn(Hk, D, n_bits, generator=gen).to(device=q.device, dtype=torch.float32)
    kb = (torch.einsum("bhtd,hdn->bhtn", k.float(), planes) > 0).long()
    qb = (torch.einsum("bhtd,hdn->bhtn", q.float(), planes.repeat_interleave(H // Hk, 0)) > 0).long()
    q_perm = _gray_rank(qb).sort(dim=-1, stable=True).indices
    k_perm = _gray_rank(kb).sort(dim=-1, stable=True).indices
    samples = torch.randperm(T, generator=gen)[:n_samples].sort().values.to(q.device)
    rank = torch.empty_like(k_perm)
    rank.scatter_(-1, k_perm, torch.arange(T, device=q.device).expand(B, Hk, T))
    sample_block = rank[:, :, samples] // block_size
    return HyperPlan(q_perm, k_perm, samples, sample_block, float(torch.log(torch.tensor(T / n_samples))))
