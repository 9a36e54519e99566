"""SSA, content-routed sub-quadratic sparse attention (in the manner of MoBA / block routing):
keys are grouped in blocks of ``block`` tokens, each summarized by its mean key; each query
scores the completed blocks before its own by ``q . mean(k_block)`` and attends to the tokens of
its ``top_blocks`` best blocks plus a causal local window of ``window`` tokens (``window >= block``,
so the query's own, unfinished block is always covered). Routing is per query and per head and
passes no gradient; keys learn to be routable through the attention they receive.

Attended keys per query: ``top_blocks * block + window``, independent of T; routing costs
O(T / block) per query. The reference paths here build a boolean mask and run masked SDPA.
"""
from __future__ import annotations

import torch

from models.zoo.sparse import SelectedAttention
from models.zoo.trunk import ZooConfig


class ContentRoutedAttention(SelectedAttention):
    def __init__(self, cfg: ZooConfig, layer: int):
        super().__init__(cfg, layer)
        self.block = int(cfg.mixer.get("block", 64))
        self.top_blocks = int(cfg.mixer.get("top_blocks", 8))
        self.window = int(cfg.mixer.get("window", 128))
        if self.window < self.block:
            raise ValueError(f"ssa: window {self.window} must be at least the block size {self.block}")

    def select(self, x, q, k, q_pos, k_pos, extra):
        B, H, Tk, D = k.shape
        diff = q_pos[:, None] - k_pos[None, :]
        local = (diff >= 0) & (diff < self.window)
        nb = Tk // self.block  # the cache is never trimmed, so key positions start at 0
        if nb == 0:
            return local[None, None]
        means = k[:, :, :nb * self.block].reshape(B, H, nb, self.block, D).mean(3)
        scores = q @ means.transpose(-1, -2)                                  # [B, H, Tq, nb]
        done = torch.arange(nb, device=q.device)[None, :] < (q_pos // self.block)[:, None]
        scores = scores.masked_fill(~done, float("-inf"))
        idx = scores.topk(min(self.top_blocks, nb), dim=-1).indices
        chosen = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, idx, True) & done
        tokens = chosen.repeat_interleave(self.block, dim=-1)
        tokens = torch.nn.functional.pad(tokens, (0, Tk - tokens.shape[-1]))
        return tokens | local


def make(cfg: ZooConfig, layer: int) -> ContentRoutedAttention:
    return ContentRoutedAttention(cfg, layer)
