"""Ground truth for Mamba-2's SSD and its short causal depthwise convolution: naive recurrences.

Layout (the project's ``[B, H, T, ...]``): x ``[B, H, T, P]``, dt ``[B, H, T]`` (positive step, after
softplus), A ``[H]`` (negative), B and C ``[B, G, T, N]`` (G groups shared by ``H / G`` heads), D ``[H]``;
state ``[B, H, N, P]``. Per head and token:

    h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_tᵀ,     y_t = h_tᵀ C_t + D x_t

Convolution: x ``[B, D, T]`` (channels first, as ``torch.nn.Conv1d``), weight ``[D, W]``, bias ``[D]``,
conv state ``[B, D, W - 1]`` (the last ``W - 1`` inputs): ``y[:, d, t] = bias[d] + Σ_w weight[d, w] ·
x[:, d, t - (W - 1) + w]``, optionally followed by SiLU. Tests call these with float64 CPU tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ssd_reference(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                  D: torch.Tensor | None = None,
                  initial_state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-by-token SSD. Returns (y: [B, H, T, P], final state: [B, H, N, P])."""
    Bsz, H, T, P = x.shape
    rep = H // B.shape[1]
    Bh, Ch = B.repeat_interleave(rep, dim=1), C.repeat_interleave(rep, dim=1)
    h = x.new_zeros(Bsz, H, B.shape[-1], P) if initial_state is None else initial_state.to(x.dtype).clone()
    ys = []
    for t in range(T):
        a = (dt[:, :, t] * A).exp()[..., None, None]
        h = a * h + dt[:, :, t, None, None] * Bh[:, :, t, :, None] * x[:, :, t, None, :]
        y = torch.einsum("bhnp,bhn->bhp", h, Ch[:, :, t])
        if D is not None:
            y = y + D[:, None] * x[:, :, t]
        ys.append(y)
    return torch.stack(ys, dim=2), h


def conv1d_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     conv_state: torch.Tensor | None = None,
                     activation: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal depthwise convolution, one output at a time. Returns (y: [B, D, T], final conv state [B, D, W-1])."""
    W = weight.shape[-1]
    if conv_state is None:
        conv_state = x.new_zeros(x.shape[0], x.shape[1], W - 1)
    xs = torch.cat([conv_state.to(x.dtype), x], dim=-1)
    ys = []
    for t in range(x.shape[-1]):
        y = (xs[:, :, t : t + W] * weight).sum(-1)
        if bias is not None:
            y = y + bias
        ys.append(F.silu(y) if activation == "silu" else y)
    return torch.stack(ys, dim=-1), xs[:, :, xs.shape[-1] - (W - 1) :]
