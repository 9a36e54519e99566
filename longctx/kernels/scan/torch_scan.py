"""The selective scan in plain PyTorch, differentiable: the zoo ``mamba1``'s CPU training path and the CPU
path of ``kernels.scan.ops``.

The recurrence ``h_t = a_t h_{t-1} + u_t`` (``a_t = exp(dt_t A)``, ``u_t = dt_t B_t x_t``, tensors
``[B, D, N, T]``, time last) runs as a two-level doubling (Hillis-Steele) scan, ``linear_scan``: element-wise
passes, each composing every map with the one ``k`` tokens earlier, so it only ever multiplies decays in (0, 1]
(no ``exp(-cumsum)`` that overflows, unlike the log-space cumulative-sum form). Autograd does not record the passes: a custom
backward runs the adjoint recurrence ``g_t = dh_t + a_{t+1} g_{t+1}`` as the same scan reversed in time, then
``du = g`` and ``da_t = g_t h_{t-1}``, so a layer keeps two ``[B, D, N, T]`` tensors (``a`` and ``h``) for
backward rather than a few per pass. At the zoo's small size (B 16, D 464, N 16, T 2048) each is 0.97 GB float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK = 16


def _doubling(a: torch.Tensor, u: torch.Tensor, want_a: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive scan of the maps ``h -> a_t h + u_t`` along the last dim: after the pass with stride ``k``,
    ``(a_t, u_t)`` maps ``h_{t-2k}`` to ``h_t`` (tokens before the start are identities). Returns the composed
    maps from the start, ``(prod a, h from h_{-1} = 0)``; the products only where ``want_a``."""
    k, T = 1, a.shape[-1]
    while k < T:
        u = torch.cat([u[..., :k], torch.addcmul(u[..., k:], a[..., k:], u[..., :-k])], dim=-1)
        if want_a or 2 * k < T:
            a = torch.cat([a[..., :k], a[..., k:] * a[..., :-k]], dim=-1)
        k *= 2
    return a, u


def linear_scan(a: torch.Tensor, u: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """``h_t = a_t h_{t-1} + u_t`` from ``h_{-1} = 0`` along the last dim. a, u: [..., T]. Returns h. No autograd.

    Two levels: a doubling scan inside chunks of ``chunk`` tokens (``log2(chunk)`` passes), the same scan
    over the chunks' end states (``T / chunk`` long, recursively), then one pass adding each chunk's incoming
    state times the chunk-local decay product: ``log2(chunk) + 1`` full passes instead of ``log2(T)``."""
    T = a.shape[-1]
    if T <= chunk:
        return _doubling(a, u, False)[1]
    pad = (-T) % chunk                                  # identity maps (a = 1, u = 0) after the end
    a, u = F.pad(a, (0, pad), value=1.0), F.pad(u, (0, pad))
    shape = (*a.shape[:-1], a.shape[-1] // chunk, chunk)
    a, h = _doubling(a.reshape(shape), u.reshape(shape), True)
    ends = linear_scan(a[..., -1], h[..., -1], chunk)   # the state after each chunk
    h = torch.addcmul(h, a, F.pad(ends[..., :-1], (1, 0))[..., None])
    return h.reshape(*h.shape[:-2], -1)[..., :T]


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        h = linear_scan(a, u)
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx, dh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, h = ctx.saved_tensors
        a_next = F.pad(a[..., 1:], (0, 1))                   # a_{t+1}; nothing after the last token
        g = linear_scan(a_next.flip(-1), dh.flip(-1)).flip(-1)
        return g * F.pad(h[..., :-1], (1, 0)), g


def selective_scan_torch(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                         D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                         initial_state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective scan, autograd-capable. x, dt, z: [B, D, T]; A: [D, N]; B, C: [B, G, N, T]; D: [D];
    initial_state: [B, D, N]. Computed in float32 (float64 for float64 inputs); no argument checks (see ``ops``).
    Returns (y: [B, D, T] in x's dtype, final state [B, D, N] in the compute dtype).
    """
    acc = torch.promote_types(x.dtype, torch.float32)
    Bsz, Dc, T = x.shape
    G, N = B.shape[1], A.shape[1]

    def grouped(t: torch.Tensor) -> torch.Tensor:   # [B, D, ...] -> [B, G, D / G, ...], a view
        return t.to(acc).reshape(Bsz, G, Dc // G, *t.shape[2:])

    # B and C stay [B, G, 1, N, T] and broadcast over a group's channels, so autograd keeps no copy per channel
    xf, dtf, Bg, Cg = grouped(x), grouped(dt), B.to(acc)[:, :, None], C.to(acc)[:, :, None]
    a = torch.exp(dtf[:, :, :, None] * A.to(acc).reshape(G, Dc // G, N, 1))   # [B, G, D / G, N, T]
    u = (dtf * xf)[:, :, :, None] * Bg
    if initial_state is not None:   # h_0 = a_0 h_init + u_0
        u = torch.cat([u[..., :1] + a[..., :1] * grouped(initial_state)[..., None], u[..., 1:]], dim=-1)
    h = _LinearScan.apply(a, u)
    y = (h * Cg).sum(3)
    if D is not None:
        y = y + D.to(acc).reshape(G, Dc // G, 1) * xf
    y = y.reshape(Bsz, Dc, T)
    if z is not None:
        y = y * F.silu(z.to(acc))
    return y.to(x.dtype), h[..., -1].reshape(Bsz, Dc, N)


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
