"""HyperAttention (Han et al., 2023), causal and simplified: queries and keys of each head are
hashed with the same angular LSH (``hash_bits`` random hyperplanes, fixed per layer and saved with
the weights; on the pre-RoPE vectors, so buckets follow content, not position); a query attends
to the past keys in its own bucket plus a causal local window of ``window`` tokens.

Differences from the paper, stated plainly: bucket membership is used as the mask directly
(no sorting into equal-size blocks), and the uniformly sampled columns that estimate the rest of
the softmax mass are left out; a crowded bucket can therefore exceed the paper's cost bound.
"""
from __future__ import annotations

import torch

from longctx.models.zoo.sparse import SelectedAttention
from longctx.models.zoo.trunk import ZooConfig


class HyperAttention(SelectedAttention):
    def __init__(self, cfg: ZooConfig, layer: int):
        super().__init__(cfg, layer)
        self.window = int(cfg.mixer.get("window", 128))
        bits = int(cfg.mixer.get("hash_bits", 3))
        g = torch.Generator().manual_seed(1000 + layer)
        self.register_buffer("planes", torch.randn(cfg.n_heads, cfg.head_dim, bits, generator=g))
        self.register_buffer("powers", 2 ** torch.arange(bits), persistent=False)

    def buckets(self, x: torch.Tensor, which: int) -> torch.Tensor:
        """LSH bucket of the pre-RoPE query (``which=0``) or key (1) of every head: ``[B, H, T]``."""
        B, T, _ = x.shape
        raw = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim)[:, :, which].transpose(1, 2)
        bits = (raw @ self.planes.to(raw.dtype)[None]) > 0                     # [B, H, T, bits]
        return (bits.long() * self.powers).sum(-1)

    def extra_keys(self, x, pos):
        return {"bucket": self.buckets(x, 1)[..., None]}                       # [B, H, T, 1]

    def select(self, x, q, k, q_pos, k_pos, extra):
        same = self.buckets(x, 0)[..., :, None] == extra["bucket"][..., 0][..., None, :]
        diff = q_pos[:, None] - k_pos[None, :]
        causal = diff >= 0
        return (same & causal) | (causal & (diff < self.window))


def make(cfg: ZooConfig, layer: int) -> HyperAttention:
    return HyperAttention(cfg, layer)
