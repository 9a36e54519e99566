"""The selective scan in plain PyTorch, differentiable: the training path of the zoo's ``mamba1`` and the CPU
path of ``kernels.scan.ops``.

The recurrence ``h_t = a_t h_{t-1} + u_t`` (``a_t = exp(dt_t A)``, ``u_t = dt_t B_t x_t``, tensors
``[B, D, T, N]``) runs as a doubling (Hillis-Steele) scan: ``log2(T)`` element-wise passes, each composing
every map with the one ``k`` tokens earlier, so it only ever multiplies decays in (0, 1] (no ``exp(-cumsum)``
that overflows, unlike the log-space cumulative-sum form). Autograd does not record the passes: a custom
backward runs the adjoint recurrence ``g_t = dh_t + a_{t+1} g_{t+1}`` as the same scan reversed in time, then
``du = g`` and ``da_t = g_t h_{t-1}``, so a layer keeps two ``[B, D, T, N]`` tensors (``a`` and ``h``) for
backward rather than ``3 log2(T)``. At the zoo's small size (B 16, D 448, T 2048, N 16) each is 0.94 GB float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _shift(t: torch.Tensor, k: int, fill: float) -> torch.Tensor:
    """``t`` moved ``k`` steps later along dim 2 (time), the first ``k`` steps filled with ``fill``."""
    return F.pad(t, (0, 0, k, 0), value=fill)[:, :, : t.shape[2]]


def linear_scan(a: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``h_t = a_t h_{t-1} + u_t`` from ``h_{-1} = 0``. a, u: [B, D, T, N]. Returns h: [B, D, T, N]. No autograd."""
    k = 1
    while k < a.shape[2]:
        u = u + a * _shift(u, k, 0.0)
        a = a * _shift(a, k, 1.0)
        k *= 2
    return u


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        h = linear_scan(a, u)
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx, dh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, h = ctx.saved_tensors
        a_next = F.pad(a[:, :, 1:], (0, 0, 0, 1))           # a_{t+1}; nothing after the last token
        g = linear_scan(a_next.flip(2), dh.flip(2)).flip(2)
        return g * _shift(h, 1, 0.0), g


def selective_scan_torch(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                         D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                         initial_state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective scan, autograd-capable. x, dt, z: [B, D, T]; A: [D, N]; B, C: [B, G, N, T]; D: [D];
    initial_state: [B, D, N]. Computed in float32 (float64 for float64 inputs); no argument checks (see ``ops``).
    Returns (y: [B, D, T] in x's dtype, final state [B, D, N] in the compute dtype).
    """
    acc = torch.promote_types(x.dtype, torch.float32)
    rep = x.shape[1] // B.shape[1]
    Bd, Cd = (m.to(acc).repeat_interleave(rep, dim=1).transpose(2, 3) for m in (B, C))   # [B, D, T, N]
    xf, dtf = x.to(acc), dt.to(acc)
    a = torch.exp(dtf[..., None] * A.to(acc)[:, None, :])
    u = (dtf * xf)[..., None] * Bd
    if initial_state is not None:   # h_0 = a_0 h_init + u_0
        u = torch.cat([u[:, :, :1] + a[:, :, :1] * initial_state.to(acc)[:, :, None], u[:, :, 1:]], dim=2)
    h = _LinearScan.apply(a, u)
    y = (h * Cd).sum(-1)
    if D is not None:
        y = y + D.to(acc)[:, None] * xf
    if z is not None:
        y = y * F.silu(z.to(acc))
    return y.to(x.dtype), h[:, :, -1]


def selective_step_torch(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                         state: torch.Tensor, D: torch.Tensor | None = None,
                         z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One token. x, dt, z: [B, D]; A: [D, N]; B, C: [B, G, N]; state: [B, D, N].
    Returns (y: [B, D] in x's dtype, new state [B, D, N] in the compute dtype)."""
    acc = torch.promote_types(x.dtype, torch.float32)
    rep = x.shape[1] // B.shape[1]
    Bd, Cd = (m.to(acc).repeat_interleave(rep, dim=1) for m in (B, C))
    xf, dtf = x.to(acc), dt.to(acc)[..., None]
    h = torch.exp(dtf * A.to(acc)) * state.to(acc) + dtf * Bd * xf[..., None]
    y = (h * Cd).sum(-1)
    if D is not None:
        y = y + D.to(acc) * xf
    if z is not None:
        y = y * F.silu(z.to(acc))
    return y.to(x.dtype), h
