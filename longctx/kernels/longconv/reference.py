"""Ground truth for the long-convolution family: the direct causal sum and the S4D recurrence.

Layout (channels first, as ``torch.nn.Conv1d``): input u ``[B, C, T]``, filter k ``[C, L]`` (any ``L``; taps
past ``T`` never reach an output), skip D ``[C]``:

    y[b, c, t] = Σ_{s = 0}^{min(t, L - 1)} k[c, s] · u[b, c, t - s]  +  D[c] · u[b, c, t]

S4D (diagonal state space, zero-order hold) per channel c and mode n, with ``λ = exp(Δ_c A_cn)``,
``B̄ = (λ - 1) / A_cn`` and the complex-conjugate half of the modes implied by the factor 2:

    h_t = λ h_{t-1} + B̄ u_t,    y_t = 2 Re(Σ_n C_cn h_t,n) + D_c u_t

whose convolution kernel is ``k[c, t] = 2 Re(Σ_n C_cn B̄_cn λ^t)``. Tests call these with float64 CPU tensors.
"""

from __future__ import annotations

import torch


def long_conv_reference(u: torch.Tensor, k: torch.Tensor, D: torch.Tensor | None = None) -> torch.Tensor:
    """Direct causal sum, one output position at a time. u: [B, C, T]; k: [C, L]; D: [C]. Returns [B, C, T]."""
    T, L = u.shape[-1], k.shape[-1]
    ys = []
    for t in range(T):
        taps = min(t + 1, L)
        window = u[:, :, t - taps + 1: t + 1].flip(-1)           # u[t], u[t-1], ..., u[t-taps+1]
        y = (window * k[:, :taps]).sum(-1)
        if D is not None:
            y = y + D * u[:, :, t]
        ys.append(y)
    return torch.stack(ys, dim=-1)


def s4d_recurrence_reference(u: torch.Tensor, log_dt: torch.Tensor, A: torch.Tensor, C: torch.Tensor,
                             D: torch.Tensor | None = None,
                             h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-by-token S4D. u: [B, C, T]; log_dt: [C]; A, C: [C, N] complex (Re A < 0); D: [C];
    h0: [B, C, N] complex. Returns (y: [B, C, T], final state h: [B, C, N] complex)."""
    dtA = log_dt.exp()[:, None] * A
    lam = dtA.exp()
    Bbar = (lam - 1) / A
    h = torch.zeros(u.shape[0], *A.shape, dtype=A.dtype, device=A.device) if h0 is None else h0.clone()
    ys = []
    for t in range(u.shape[-1]):
        h = lam * h + Bbar * u[:, :, t, None]
        y = 2 * (C * h).sum(-1).real
        if D is not None:
            y = y + D * u[:, :, t]
        ys.append(y)
    return torch.stack(ys, dim=-1), h
