"""Chunked linear attention / gated delta rule in plain PyTorch: fast on the CPU and autograd-capable.

The same recurrence as ``reference.py`` in chunked form (the form the Triton kernels use), so the zoo
can train with it: ``from kernels.linear.chunked_torch import chunked_linear_attention``.

Per chunk of ``C`` tokens, with ``Γ_t = exp(gc_t)`` the decay accumulated since the chunk start:
  plain / gated: ``U = V``;
  delta rule:    ``(I + diag(b) L) U = diag(b) (V - (K ⊙ Γ) S0)`` with ``L[t, s] = k_t · (Γ_t / Γ_s ⊙ k_s)``
                 for ``s < t`` (the WY / UT form: one triangular solve per chunk, no token loop);
  output:        ``O = scale · ((Q ⊙ Γ) S0 + tril(Q Kᵀ ⊙ Γ_t / Γ_s) U)``;
  state:         ``S = Γ_C ⊙ S0 + (K ⊙ Γ_C / Γ)ᵀ U``.
Per-channel decay factors ``Γ_t / Γ_s`` into ``exp(gc_t - gr) · exp(gr - gc_s)`` around the chunk's
middle row ``gr``: exact, and finite while the log decay summed over half a chunk stays above -80.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from longctx.kernels.linear.reference import _expand_heads


def _chunks(x: torch.Tensor, C: int, NT: int) -> torch.Tensor:
    """[B, H, T, ...] -> [B, H, NT, C, ...], zero-padded at the end."""
    pad = NT * C - x.shape[2]
    if pad:
        x = F.pad(x, (0, 0) * (x.dim() - 3) + (0, pad))
    return x.reshape(*x.shape[:2], NT, C, *x.shape[3:])


def _pair_matrix(a: torch.Tensor, b: torch.Tensor, gc: torch.Tensor, scalar: bool, strict: bool) -> torch.Tensor:
    """M[t, s] = a_t · (Γ_t / Γ_s ⊙ b_s) for s <= t (s < t when strict), zero above. a, b: [..., C, D]."""
    C = a.shape[-2]
    mask = torch.ones(C, C, dtype=torch.bool, device=a.device).tril(-1 if strict else 0)
    if scalar:
        diff = gc[..., :, None, 0] - gc[..., None, :, 0]
        decay = torch.where(mask, diff, torch.full_like(diff, float("-inf"))).exp()
        return (a @ b.transpose(-1, -2)) * decay
    gr = gc[..., C // 2 : C // 2 + 1, :]
    m = (a * (gc - gr).exp()) @ (b * (gr - gc).exp()).transpose(-1, -2)
    return m.masked_fill(~mask, 0.0)


def chunked_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None = None,
    beta: torch.Tensor | None = None,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked form of ``reference.recurrent_reference`` (same arguments, no validation).

    q, k: [B, H_q|H_k, T, D_k]; v: [B, H_v, T, D_v]; g: log decay [B, H_g, T] or [B, H_g, T, D_k];
    beta: [B, H_b, T] (delta rule); initial_state: [B, H, D_k, D_v]. Computes in float32 (float64 if q is).
    Returns (o: [B, H, T, D_v] in v's dtype, final state: [B, H, D_k, D_v] float32/float64).
    """
    H = max(x.shape[1] for x in (q, k, v, g, beta) if x is not None)
    dt = torch.float64 if q.dtype == torch.float64 else torch.float32
    q, k, v, g, beta = (None if x is None else _expand_heads(x, H).to(dt) for x in (q, k, v, g, beta))
    B, _, T, Dk = q.shape
    Dv = v.shape[-1]
    C = chunk_size
    NT = -(-T // C)
    qc, kc, vc = _chunks(q, C, NT), _chunks(k, C, NT), _chunks(v, C, NT)
    scalar = g is None or g.dim() == 3
    if g is None:
        gc = q.new_zeros(B, H, NT, C, 1)
    else:
        gc = _chunks(g if g.dim() == 4 else g[..., None], C, NT).cumsum(dim=3)
    glast = gc[..., -1:, :]
    qg = qc * gc.exp()
    kd = kc * (glast - gc).exp()
    a_last = glast.transpose(-1, -2).exp()
    A_qk = _pair_matrix(qc, kc, gc, scalar, strict=False)
    if beta is not None:
        bc = _chunks(beta, C, NT)[..., None]
        eye = torch.eye(C, dtype=dt, device=q.device)
        L = eye + bc * _pair_matrix(kc, kc, gc, scalar, strict=True)
        W = torch.linalg.solve_triangular(L, bc * kc * gc.exp(), upper=False, unitriangular=True)
        Vw = torch.linalg.solve_triangular(L, bc * vc, upper=False, unitriangular=True)
    S = q.new_zeros(B, H, Dk, Dv) if initial_state is None else initial_state.to(dt)
    outs = []
    for n in range(NT):
        U = Vw[:, :, n] - W[:, :, n] @ S if beta is not None else vc[:, :, n]
        outs.append(qg[:, :, n] @ S + A_qk[:, :, n] @ U)
        S = a_last[:, :, n] * S + kd[:, :, n].transpose(-1, -2) @ U
    o = scale * torch.stack(outs, dim=2).reshape(B, H, NT * C, Dv)[:, :, :T]
    return o, S
