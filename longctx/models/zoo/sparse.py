"""The shared shape of the content-selected sparse mixers (dsa, ssa, hyper): softmax attention
over a per-query set of keys that ``select`` picks. Training builds the selection for the whole
sequence at once; inference builds it for blocks of queries against the cache, so a long prefill
never holds a [T, T] mask. Selections are always causal and hold at least the query's own key.
"""
from __future__ import annotations

import torch

from longctx.models.zoo.dense import Attention, masked_attention

QUERY_CHUNK = 1024


class SelectedAttention(Attention):
    def select(self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, q_pos: torch.Tensor,
               k_pos: torch.Tensor, extra: dict[str, torch.Tensor]) -> torch.Tensor:
        """Keys each query attends to: bool ``[B, H or 1, Tq, Tk]``. ``x: [B, Tq, d]`` are the
        queries' mixer inputs, ``q: [B, H, Tq, D]``, ``k: [B, H, Tk, D]`` (cache included)."""
        raise NotImplementedError

    def attend_train(self, x, q, k, v, pos):
        """Selects by token index (windows and blocks count tokens, whatever the RoPE positions)."""
        idx = torch.arange(q.shape[2], device=q.device)
        return masked_attention(q, k, v, self.select(x, q, k, idx, idx, self.extra_keys(x, idx)))

    def attend_infer(self, x, q, k, v, q_pos, k_pos, extra):
        outs = []
        for a in range(0, q.shape[2], QUERY_CHUNK):
            s = slice(a, a + QUERY_CHUNK)
            mask = self.select(x[:, s], q[:, :, s], k, q_pos[s], k_pos, extra)
            outs.append(masked_attention(q[:, :, s], k, v, mask))
        return torch.cat(outs, dim=2)
