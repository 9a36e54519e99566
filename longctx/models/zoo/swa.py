"""Sliding-window attention: each token attends to itself and the ``window - 1`` tokens before it.

Both paths work block by block (query blocks of ``window`` tokens see their own block and the
one before), so memory and time are O(T * window) at any length; the cache keeps the last
``window - 1`` keys and values, so decoding costs O(window) per token.
"""
from __future__ import annotations

import torch

from longctx.models.zoo.dense import Attention, masked_attention
from longctx.models.zoo.trunk import ZooConfig


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor,
                    k_pos: torch.Tensor, window: int) -> torch.Tensor:
    """Causal attention limited to ``0 <= q_pos - k_pos < window``; ``q: [B, H, Tq, D]``,
    ``k, v: [B, H, Tk, D]`` with ascending positions (the keys end where the queries end)."""
    outs = []
    for a in range(0, q.shape[2], window):
        qp = q_pos[a:a + window]
        lo = int(torch.searchsorted(k_pos, qp[0] - window + 1))
        hi = int(torch.searchsorted(k_pos, qp[-1], right=True))
        outs.append(_window_block(q[:, :, a:a + window], k[:, :, lo:hi], v[:, :, lo:hi], qp, k_pos[lo:hi], window))
    return torch.cat(outs, dim=2)


def band_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """``local_attention`` with positions ``0..T-1`` for queries and keys (``q, k, v: [B, H, T, D]``): every
    slice bound is a Python int, so the training step has no device sync and compiles into one graph."""
    T = q.shape[2]
    outs = []
    for a in range(0, T, window):
        b, lo = min(a + window, T), max(0, a - window + 1)
        pos = torch.arange(lo, b, device=q.device)
        outs.append(_window_block(q[:, :, a:b], k[:, :, lo:b], v[:, :, lo:b], pos[a - lo:], pos, window))
    return torch.cat(outs, dim=2)


def _window_block(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, qp: torch.Tensor, kp: torch.Tensor,
                  window: int) -> torch.Tensor:
    """One query block against its key span: ``q: [B, H, Tq, D]`` at positions ``qp: [Tq]``, ``k, v`` at ``kp``."""
    diff = qp[:, None] - kp[None, :]
    return masked_attention(q, k, v, (diff >= 0) & (diff < window))


class SlidingWindowAttention(Attention):
    def __init__(self, cfg: ZooConfig, layer: int):
        super().__init__(cfg, layer)
        self.window = int(cfg.mixer.get("window", 256))

    def attend_train(self, x, q, k, v, pos):
        return band_attention(q, k, v, self.window)   # the window counts tokens, not RoPE positions

    def attend_infer(self, x, q, k, v, q_pos, k_pos, extra):
        return local_attention(q, k, v, q_pos, k_pos, self.window)

    def trim(self, state):
        keep = self.window - 1
        return {**state, "k": state["k"][:, :, -keep:], "v": state["v"][:, :, -keep:]} if keep else state


def make(cfg: ZooConfig, layer: int) -> SlidingWindowAttention:
    return SlidingWindowAttention(cfg, layer)
