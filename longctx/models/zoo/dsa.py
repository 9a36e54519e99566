"""DeepSeek sparse attention (DSA): a lightning indexer scores every past token, each query
attends to its ``topk`` best-scoring tokens only.

Indexer: ``I[t, s] = sum_h w[t, h] * relu(qI[t, h] . kI[s])`` with ``index_heads`` small heads of
``index_dim`` (RoPE on qI, kI; one shared key per token, cached beside k and v). Its input is the
mixer input with the gradient stopped, and it is trained only by an auxiliary loss, as DeepSeek
did: the KL divergence from the main attention's distribution (softmax of q.k summed over heads
and renormalized, stop-gradient) to ``softmax(I[t, :])`` over all causal positions. Selection
(top-k) passes no gradient. The indexer is O(T^2) (cheap per pair); the attention is O(T * topk).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from longctx.models.zoo.dense import causal_mask, masked_attention, rope
from longctx.models.zoo.sparse import SelectedAttention
from longctx.models.zoo.trunk import ZooConfig


class DeepSeekSparseAttention(SelectedAttention):
    def __init__(self, cfg: ZooConfig, layer: int):
        super().__init__(cfg, layer)
        self.topk = int(cfg.mixer.get("topk", 128))
        self.index_heads = int(cfg.mixer.get("index_heads", 4))
        self.index_dim = int(cfg.mixer.get("index_dim", 32))
        self.index_q = nn.Linear(cfg.d_model, self.index_heads * self.index_dim, bias=False)
        self.index_k = nn.Linear(cfg.d_model, self.index_dim, bias=False)
        self.index_w = nn.Linear(cfg.d_model, self.index_heads, bias=False)
        self.aux: torch.Tensor | None = None

    def extra_keys(self, x, pos):
        return {"index_k": rope(self.index_k(x.detach())[:, None], pos, self.rope_fraction)}      # [B, 1, T, dI]

    def index_scores(self, x: torch.Tensor, q_pos: torch.Tensor, index_k: torch.Tensor) -> torch.Tensor:
        """``I: [B, Tq, Tk]`` in float32 (float64 for float64 models)."""
        B, T, _ = x.shape
        qi = rope(self.index_q(x.detach()).view(B, T, self.index_heads, self.index_dim).transpose(1, 2), q_pos, self.rope_fraction)
        acc = torch.promote_types(x.dtype, torch.float32)
        w = self.index_w(x.detach()).transpose(1, 2)[..., None].to(acc)          # [B, Hi, Tq, 1]
        return (F.relu(qi.to(acc) @ index_k.to(acc).transpose(-1, -2)) * w).sum(1)

    def select(self, x, q, k, q_pos, k_pos, extra):
        scores = self.index_scores(x, q_pos, extra["index_k"]).detach()
        causal = causal_mask(q_pos, k_pos)
        # ties (relu zeros) go to the more recent token, the same way in every chunking
        scores = (scores + k_pos.to(scores.dtype) * 1e-9).masked_fill(~causal, float("-inf"))
        idx = scores.topk(min(self.topk, k.shape[2]), dim=-1).indices
        chosen = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, idx, True)
        return (chosen & causal)[:, None]

    def attend_train(self, x, q, k, v, pos):
        """Selects with the RoPE positions: the indexer is rotary too, and positions only ever increase,
        so the causal mask by position is the mask by token order."""
        out = masked_attention(q, k, v, self.select(x, q, k, pos, pos, self.extra_keys(x, pos)))
        self.aux = self._distill(x, q, k, pos) if self.training and torch.is_grad_enabled() else None
        return out

    def _distill(self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """KL(main attention summed over heads || softmax(indexer)), per query, averaged."""
        causal = causal_mask(pos, pos)
        with torch.no_grad():
            logits = (q.float() @ k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5
            target = logits.masked_fill(~causal, float("-inf")).softmax(-1).sum(1)
            target = target / target.sum(-1, keepdim=True)
        scores = self.index_scores(x, pos, self.extra_keys(x, pos)["index_k"])
        log_q = scores.masked_fill(~causal, float("-inf")).log_softmax(-1).masked_fill(~causal, 0.0)
        return (torch.xlogy(target, target) - target * log_q).sum(-1).mean()


def make(cfg: ZooConfig, layer: int) -> DeepSeekSparseAttention:
    return DeepSeekSparseAttention(cfg, layer)
