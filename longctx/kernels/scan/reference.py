"""Ground truth for Mamba-1's selective scan: the naive recurrence, one token at a time.

Layout (channels first, time last, as Mamba's own kernel): x, dt, z ``[B, D, T]`` (D channels; dt is the
positive step, after softplus), A ``[D, N]`` (negative, N the state size per channel), B and C
``[B, G, N, T]`` (G groups, channel ``d`` reads group ``d // (D / G)``), D_skip ``[D]``, state ``[B, D, N]``.
Per channel d, state entry n and token t:

    h_t = exp(dt_t A[d, n]) h_{t-1} + dt_t B_t[n] x_t,     y_t = Σ_n C_t[n] h_t[n] + D_skip[d] x_t,

then ``y_t · silu(z_t)`` where z is given. Tests call this with float64 CPU tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def scan_reference(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                   initial_state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-by-token selective scan. Returns (y: [B, D, T], final state: [B, D, N])."""
    rep = x.shape[1] // B.shape[1]
    Bd, Cd = B.repeat_interleave(rep, dim=1), C.repeat_interleave(rep, dim=1)   # [B, D, N, T]
    h = x.new_zeros(x.shape[0], x.shape[1], A.shape[1]) if initial_state is None else initial_state.to(x.dtype)
    ys = []
    for t in range(x.shape[-1]):
        d = dt[:, :, t, None]
        h = (d * A).exp() * h + d * Bd[..., t] * x[:, :, t, None]
        y = (h * Cd[..., t]).sum(-1)
        if D is not None:
            y = y + D * x[:, :, t]
        ys.append(y)
    y = torch.stack(ys, dim=-1)
    return (y if z is None else y * F.silu(z)), h
