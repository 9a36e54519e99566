"""S4D (diagonal state space) in PyTorch: the convolution kernel materialised to length L, prefill with state
hand-over, and the one-token recurrence for decoding. Definitions and layout in ``reference.py``.

Every sum over time of powers ``λ^t`` (kernel, initial-state response, final state) is a Vandermonde product,
computed blockwise: ``λ^(i·c + j) = λ^(i·c) · λ^j`` with ``c ≈ √L``, so one batched complex matmul per channel
gives all L positions without a ``[C, N, L]`` intermediate. The powers themselves are taken in complex128
from ``Δ·A`` in complex128 (the phase ``Δ·Im(A)·t`` reaches 1e6 rad at long L, where float32's relative
rounding of ``Δ·A`` alone would be a phase error of order 0.1 rad) and cast to the working precision:
complex64 for float32 parameters, complex128 for float64. Autograd flows through everything here.
"""

from __future__ import annotations

import torch

from longctx.kernels.longconv.ops import long_conv


def _block(L: int) -> int:
    """Block length of the two-level Vandermonde product: a power of two near √L."""
    return 1 << max(0, (max(L, 1).bit_length() + 1) // 2)


def _powers(e: torch.Tensor, count: int, stride: int, dtype: torch.dtype) -> torch.Tensor:
    """exp(e · stride · j) for j < count, in complex128, cast to ``dtype``. e: [C, N]. Returns [C, N, count]."""
    j = torch.arange(count, device=e.device, dtype=torch.float64) * stride
    return torch.exp(e.to(torch.complex128)[..., None] * j).to(dtype)


def _vander_sum(G: torch.Tensor, e: torch.Tensor, L: int) -> torch.Tensor:
    """Σ_n G[c, m, n] · exp(e[c, n] · t) for t < L. G: [C, M, N]; e: [C, N]. Returns [C, M, L] complex."""
    Cc, M, N = G.shape
    c = _block(L)
    nb = -(-L // c)
    starts = _powers(e, nb, c, G.dtype).transpose(1, 2)               # [C, nb, N]
    P = (G[:, :, None, :] * starts[:, None]).reshape(Cc, M * nb, N)
    return (P @ _powers(e, c, 1, G.dtype)).reshape(Cc, M, nb * c)[..., :L]


def _vander_apply(x: torch.Tensor, e: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Σ_t x[c, m, t] · exp(e[c, n] · t). x: [C, M, T] real; e: [C, N]. Returns [C, M, N] in ``dtype``."""
    Cc, M, T = x.shape
    c = _block(T)
    nb = -(-T // c)
    xb = torch.nn.functional.pad(x, (0, nb * c - T)).reshape(Cc, M * nb, c).to(dtype)
    part = (xb @ _powers(e, c, 1, dtype).transpose(1, 2)).reshape(Cc, M, nb, -1)   # [C, M, nb, N]
    return (part * _powers(e, nb, c, dtype).transpose(1, 2)[:, None]).sum(2)


def _check(log_dt: torch.Tensor, A: torch.Tensor, C: torch.Tensor) -> None:
    if A.dim() != 2 or not A.is_complex():
        raise ValueError(f"A: expected a complex [C, N] tensor, got {tuple(A.shape)} {A.dtype}")
    if tuple(C.shape) != tuple(A.shape) or C.dtype != A.dtype:
        raise ValueError(f"C: {tuple(C.shape)} {C.dtype}, expected {tuple(A.shape)} {A.dtype} like A")
    if tuple(log_dt.shape) != (A.shape[0],) or log_dt.is_complex():
        raise ValueError(f"log_dt: shape {tuple(log_dt.shape)}, expected a real [{A.shape[0]}]")
    if torch.compiler.is_compiling():   # a value check syncs the device and breaks the compiled graph
        return
    a = torch.view_as_real(A.detach())
    if not bool(torch.isfinite(a).all()) or float(a[..., 0].max()) >= 0:
        raise ValueError("A: must be finite with Re(A) < 0 (a stable diagonal state space)")


def _discretize(log_dt: torch.Tensor, A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-order hold: (Δ·A in complex128, B̄ = (exp(Δ·A) - 1) / A in A's dtype), both [C, N]."""
    e = log_dt.double().exp()[:, None] * A.to(torch.complex128)
    return e, ((e.exp() - 1) / A.to(torch.complex128)).to(A.dtype)


def s4d_kernel(log_dt: torch.Tensor, A: torch.Tensor, C: torch.Tensor, L: int) -> torch.Tensor:
    """S4D convolution kernel k[c, t] = 2 Re(Σ_n C B̄ λ^t), t < L. log_dt: [C]; A, C: [C, N] complex.
    Returns k: [C, L] real (A's real dtype). Usage: ``y = long_conv(u, s4d_kernel(log_dt, A, C, T), D)``.
    """
    _check(log_dt, A, C)
    if L < 1:
        raise ValueError(f"L: {L}, expected >= 1")
    e, Bbar = _discretize(log_dt, A)
    return 2 * _vander_sum((C * Bbar)[:, None], e, L)[:, 0].real


def s4d_prefill(u: torch.Tensor, log_dt: torch.Tensor, A: torch.Tensor, C: torch.Tensor,
                D: torch.Tensor | None = None, h0: torch.Tensor | None = None, *,
                method: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """S4D over a whole prompt (or a continuation from state h0) through ``long_conv``.
    u: [B, C, T]; log_dt: [C]; A, C: [C, N] complex; D: [C]; h0: [B, C, N] complex.
    Returns (y: [B, C, T] in u's dtype, final state h: [B, C, N] in A's dtype) for ``s4d_step``.
    """
    _check(log_dt, A, C)
    if u.dim() != 3 or u.shape[1] != A.shape[0] or u.shape[-1] < 1:
        raise ValueError(f"u: shape {tuple(u.shape)}, expected [B, {A.shape[0]}, T] with T >= 1")
    if h0 is not None and (tuple(h0.shape) != (u.shape[0], *A.shape) or h0.dtype != A.dtype):
        raise ValueError(f"h0: {tuple(h0.shape)} {h0.dtype}, expected {(u.shape[0], *A.shape)} {A.dtype}")
    T = u.shape[-1]
    e, Bbar = _discretize(log_dt, A)
    y = long_conv(u, 2 * _vander_sum((C * Bbar)[:, None], e, T)[:, 0].real, D, method=method)
    x = u.to(A.real.dtype).flip(-1).transpose(0, 1)                   # [C, B, T], newest input first
    h = (Bbar[:, None] * _vander_apply(x, e, A.dtype)).transpose(0, 1)         # Σ_s λ^(T-1-s) B̄ u_s
    if h0 is not None:
        lam = e.exp().to(A.dtype)
        free = 2 * _vander_sum((C * lam)[:, None] * h0.transpose(0, 1), e, T).real   # the state's own decay
        y = (y.to(free.dtype) + free.transpose(0, 1)).to(u.dtype)
        h = h + _powers(e, 2, T, A.dtype)[..., 1] * h0
    return y, h


def s4d_step(u: torch.Tensor, h: torch.Tensor, log_dt: torch.Tensor, A: torch.Tensor, C: torch.Tensor,
             D: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding token by the diagonal recurrence, O(N) per channel. u: [B, C]; h: [B, C, N] complex.
    Returns (y: [B, C] in u's dtype, new state h: [B, C, N])."""
    _check(log_dt, A, C)
    if u.dim() != 2 or tuple(h.shape) != (u.shape[0], *A.shape) or h.dtype != A.dtype:
        raise ValueError(f"u, h: shapes {tuple(u.shape)}, {tuple(h.shape)} {h.dtype}, expected [B, C] and "
                         f"[B, C, N] {A.dtype} with [C, N] = {tuple(A.shape)}")
    e, Bbar = _discretize(log_dt, A)
    uf = u.to(A.real.dtype)
    h = e.exp().to(A.dtype) * h + Bbar * uf[..., None]
    y = 2 * (C * h).sum(-1).real
    if D is not None:
        y = y + D.to(y.dtype) * uf
    return y.to(u.dtype), h
