"""Performer: causal softmax attention approximated by FAVOR+ positive orthogonal random features,

    φ(x) = exp(W x - |x|²/2) / sqrt(m),    o_t = φ(q_t)ᵀ S_t / φ(q_t)ᵀ z_t,
    S_t = Σ_{s<=t} φ(k_s) v_sᵀ,    z_t = Σ_{s<=t} φ(k_s),

with ``x = d^-1/4 q`` (the softmax scale split over q and k) and W: ``[m, d]`` drawn once per layer
(``kernels.performer.orthogonal_features``, seed = layer index) and kept as a buffer, so a checkpoint
carries its features; they are not redrawn during training.

Position: RoPE is applied to q and k *before* the feature map. Rotation keeps norms, and the estimator
is unbiased for any pair of vectors, so ``E[φ(R_t q)ᵀ φ(R_s k)] = exp(qᵀ R_{s-t} k)``: FAVOR+ then estimates
RoPE softmax attention itself, and the features stay positive (rotating the features instead, as for
linear attention with other maps, would break positivity and the normaliser).

Training: the chunked PyTorch form (``kernels.performer.favor_chunked``). Inference state
``{"favor": FavorState(kv [B, H, m, D + 1], shift [B, H]), "pos": int}``: a constant cost per decoded token.
On a GPU prefill and decode go through ``kernels.performer`` (the linear family's Triton chunk kernels).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from longctx.kernels.performer.chunked_torch import favor_chunked, favor_step_torch
from longctx.kernels.performer.features import orthogonal_features
from longctx.models.zoo.dense import rope
from longctx.models.zoo.trunk import ZooConfig

GPU_CHUNK = 64


class Performer(nn.Module):
    """FAVOR+ attention mixer; ``x: [B, T, d_model]``."""

    rotary = True   # forward takes RoPE positions

    def __init__(self, cfg: ZooConfig, layer: int):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.chunk = int(cfg.mixer.get("chunk", 64))
        self.rope_fraction = float(cfg.mixer.get("rope_fraction", 1.0))
        m = int(cfg.mixer.get("features", 2 * self.head_dim))
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.register_buffer("features", orthogonal_features(m, self.head_dim, seed=layer))

    def _project(self, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return rope(q, pos, self.rope_fraction), rope(k, pos, self.rope_fraction), v

    def _merge(self, o: torch.Tensor) -> torch.Tensor:
        B, H, T, D = o.shape
        return self.out(o.transpose(1, 2).reshape(B, T, H * D))

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """``pos: [T]`` RoPE positions (default ``0..T-1``)."""
        q, k, v = self._project(x, torch.arange(x.shape[1], device=x.device) if pos is None else pos)
        o, _ = favor_chunked(q, k, v, self.features, self.head_dim ** -0.5, None, self.chunk)
        return self._merge(o)

    def step(self, x: torch.Tensor, state: dict[str, Any] | None) -> tuple[torch.Tensor, dict[str, Any]]:
        seen = state["pos"] if state else 0
        prev = state["favor"] if state else None
        q, k, v = self._project(x, torch.arange(seen, seen + x.shape[1], device=x.device))
        scale = self.head_dim ** -0.5
        ops = _kernels() if x.is_cuda else None
        if ops is not None:
            attend, step = ops
            if x.shape[1] == 1:
                o, favor = step(q[:, :, 0], k[:, :, 0], v[:, :, 0], self.features, prev, scale=scale)
                o = o[:, :, None]
            else:
                o, favor = attend(q, k, v, self.features, scale=scale, initial_state=prev, output_final_state=True,
                                  chunk_size=GPU_CHUNK)
        elif x.shape[1] == 1:
            o, favor = favor_step_torch(q[:, :, 0], k[:, :, 0], v[:, :, 0], self.features, scale, prev)
            o = o[:, :, None]
        else:
            o, favor = favor_chunked(q, k, v, self.features, scale, prev, self.chunk)
        return self._merge(o), {"favor": favor, "pos": seen + x.shape[1]}


def _kernels():
    try:
        from longctx.kernels.performer import favor_attention, favor_step
    except ImportError:
        return None
    return favor_attention, favor_step


def make(cfg: ZooConfig, layer: int) -> Performer:
    return Performer(cfg, layer)
