"""Dense causal softmax attention with rotary position embeddings (the strong baseline).

``Attention`` is also the base of the sparse mixers (swa, dsa, ssa, hyper): they share the
projections, RoPE and the key/value cache, and override ``attend_train`` / ``attend_infer``.
A prefill on a GPU goes through ``kernels.flash.flash_attention`` (Triton); elsewhere, and for
continuations against a cache, through PyTorch SDPA (bottom-right causal, no mask built on a GPU).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention.bias import causal_lower_right

from longctx.models.zoo.trunk import ZooConfig

ROPE_BASE = 10000.0
FLASH_HEAD_DIMS = (16, 32, 64, 128, 256)  # what kernels.flash compiles for; other widths use SDPA


def rope(x: torch.Tensor, pos: torch.Tensor, fraction: float = 1.0) -> torch.Tensor:
    """Rotate ``x: [B, H, T, D]`` by positions ``pos: [T]`` (half-split rotary layout) in its first
    ``fraction`` of dimensions (rounded to pairs); the rest pass unrotated, so they match content at
    any distance (partial rotary, as in GPT-NeoX)."""
    rot = 2 * round(x.shape[-1] * fraction / 2)
    d = rot // 2
    inv = ROPE_BASE ** (-torch.arange(d, device=x.device, dtype=torch.float64) / d)
    ang = pos.to(torch.float64)[:, None] * inv[None, :]
    acc = torch.promote_types(x.dtype, torch.float32)
    cos, sin = ang.cos().to(acc), ang.sin().to(acc)   # angles in float64: exact at 1M positions
    x1, x2 = x[..., :d].to(acc), x[..., d:rot].to(acc)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, x[..., rot:].to(acc)], dim=-1).to(x.dtype)


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax attention where ``mask`` (bool, broadcastable to ``[B, H, Tq, Tk]``, True = attend)
    holds at least one True per query row."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def causal_mask(q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
    """``[Tq, Tk]`` bool: key position <= query position."""
    return k_pos[None, :] <= q_pos[:, None]


def _flash():
    try:
        from longctx.kernels.flash import flash_attention
    except ImportError:
        return None
    return flash_attention


class Attention(nn.Module):
    """Causal multi-head softmax attention with RoPE; ``x: [B, T, d_model]``.

    Inference state: ``{"k": [B, H, S, D], "v": [B, H, S, D], "pos": int}`` where ``pos`` is the
    number of tokens seen and the cache holds the last ``S`` of them.

    ``rope_fraction`` (mixer knob, default 1): the share of each head's dimensions that RoPE rotates.
    ``logn_len`` (mixer knob, default 0 = off): log-n query scaling (as in Qwen) for prompts longer
    than training saw; see ``scale_queries``.

    ``context_parallel``: None, or this rank's share of a sequence split across processes (set by
    ``models.zoo.context_parallel`` on dense layers only): its token positions and its ring attention."""

    context_parallel = None
    rotary = True   # forward takes RoPE positions (the trainer's position skips)

    def __init__(self, cfg: ZooConfig, layer: int):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.rope_fraction = float(cfg.mixer.get("rope_fraction", 1.0))
        self.logn_len = int(cfg.mixer.get("logn_len", 0))
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def project(self, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return rope(q, pos, self.rope_fraction), rope(k, pos, self.rope_fraction), v

    def scale_queries(self, q: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """With ``logn_len`` L set, the query at token index t (``idx: [T]``) is multiplied by
        ``max(1, log(t + 1) / log(L))``: softmax over t keys stays as peaked as over the L keys of
        training (the extra keys would otherwise dilute it). Prompts up to L tokens are unchanged."""
        if not self.logn_len:
            return q
        scale = (torch.log1p(idx.to(torch.float64)) / math.log(self.logn_len)).clamp(min=1.0)
        return q * scale.to(q.dtype)[:, None]

    def merge(self, o: torch.Tensor) -> torch.Tensor:
        B, H, T, D = o.shape
        return self.out(o.transpose(1, 2).reshape(B, T, H * D))

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """``pos: [T]`` increasing RoPE positions (default ``0..T-1``); which keys a query sees is
        decided by token order, not by these."""
        cp = self.context_parallel
        idx = torch.arange(x.shape[1], device=x.device) if cp is None else cp.positions(x.device)
        pos = idx if pos is None else pos
        q, k, v = self.project(x, pos)
        q = self.scale_queries(q, idx)
        return self.merge(self.attend_train(x, q, k, v, pos) if cp is None else cp.attend(q, k, v))

    def step(self, x: torch.Tensor, state: dict[str, Any] | None) -> tuple[torch.Tensor, dict[str, Any]]:
        seen = state["pos"] if state else 0
        q_pos = torch.arange(seen, seen + x.shape[1], device=x.device)
        q, k, v = self.project(x, q_pos)
        q = self.scale_queries(q, q_pos)
        extra = self.extra_keys(x, q_pos)
        if state:
            k, v = torch.cat([state["k"], k], 2), torch.cat([state["v"], v], 2)
            extra = {name: torch.cat([state[name], t], 2) for name, t in extra.items()}
        k_pos = torch.arange(seen + x.shape[1] - k.shape[2], seen + x.shape[1], device=x.device)
        o = self.attend_infer(x, q, k, v, q_pos, k_pos, extra)
        return self.merge(o), self.trim({"k": k, "v": v, "pos": seen + x.shape[1], **extra})

    def extra_keys(self, x: torch.Tensor, pos: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-token tensors ``[B, *, T, *]`` a subclass caches beside k and v (e.g. indexer keys)."""
        return {}

    def trim(self, state: dict[str, Any]) -> dict[str, Any]:
        """Drop cache entries no future query can attend to (a sliding window keeps its last W)."""
        return state

    def attend_train(self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     pos: torch.Tensor) -> torch.Tensor:
        """Training attention over the whole sequence; ``pos: [T]`` are the RoPE positions."""
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def attend_infer(self, x, q, k, v, q_pos, k_pos, extra) -> torch.Tensor:
        if q.shape[2] == k.shape[2]:
            flash = _flash() if q.is_cuda and q.shape[-1] in FLASH_HEAD_DIMS else None
            if flash is not None:
                return flash(q, k, v)
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if q.shape[2] == 1:
            return F.scaled_dot_product_attention(q, k, v)
        # a prefill piece against the cache: the queries are the last keys, so the causal mask is aligned
        # to the bottom right; SDPA's CausalBias runs that on a GPU without building the [piece, S] mask
        return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(q.shape[2], k.shape[2]))


def make(cfg: ZooConfig, layer: int) -> nn.Module:
    return Attention(cfg, layer)
