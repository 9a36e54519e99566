"""Ground truth for the linear-attention family: the naive token-by-token recurrence.

One function covers every variant the kernels implement (state ``S: [D_k, D_v]`` per head):

    plain / gated:   S_t = a_t ⊙ S_{t-1} + k_t v_tᵀ
    gated delta:     S_t = a_t ⊙ S_{t-1} + b_t k_t (v_t - (a_t ⊙ S_{t-1})ᵀ k_t)ᵀ
                         = (I - b_t k_t k_tᵀ) (a_t ⊙ S_{t-1}) + b_t k_t v_tᵀ
                     (decay first, then the delta correction: Kimi's KDA order for per-channel a_t;
                      for scalar a_t this is a_t (I - b_t k_t k_tᵀ) S_{t-1} + b_t k_t v_tᵀ)
    output:          o_t = scale · S_tᵀ q_t

``a_t = exp(g_t)`` with ``g`` the log decay (``g <= 0``): scalar per head and token ``[B, H, T]``, or per
key channel ``[B, H, T, D_k]`` (then ``a_t ⊙ S`` scales row ``i`` of ``S`` by ``a_t[i]``). Runs in the
dtype it is given; tests call it with float64 CPU tensors. Slow by design: it is the definition.
"""

from __future__ import annotations

import torch


def _expand_heads(x: torch.Tensor | None, H: int) -> torch.Tensor | None:
    """Repeat a tensor of ``H_x`` heads (dim 1) to ``H`` heads: state head ``h`` reads head ``h // (H // H_x)``."""
    if x is None or x.shape[1] == H:
        return x
    return x.repeat_interleave(H // x.shape[1], dim=1)


def recurrent_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None = None,
    beta: torch.Tensor | None = None,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Naive recurrence. q, k: [B, H_q|H_k, T, D_k]; v: [B, H_v, T, D_v]; g: [B, H_g, T] or [B, H_g, T, D_k]
    (log decay); beta: [B, H_b, T] (delta rule when given); initial_state: [B, H, D_k, D_v].

    Returns (o: [B, H, T, D_v], final state: [B, H, D_k, D_v]) with H the largest head count.
    """
    H = max(x.shape[1] for x in (q, k, v, g, beta) if x is not None)
    q, k, v, g, beta = (_expand_heads(x, H) for x in (q, k, v, g, beta))
    B, _, T, Dk = q.shape
    Dv = v.shape[-1]
    S = q.new_zeros(B, H, Dk, Dv) if initial_state is None else initial_state.to(q.dtype).clone()
    out = []
    for t in range(T):
        if g is not None:
            a = g[:, :, t].exp()
            S = S * (a[..., None, None] if a.dim() == 2 else a[..., None])
        kt, vt = k[:, :, t], v[:, :, t]
        if beta is not None:
            vt = beta[:, :, t, None] * (vt - torch.einsum("bhkv,bhk->bhv", S, kt))
        S = S + kt[..., :, None] * vt[..., None, :]
        out.append(scale * torch.einsum("bhkv,bhk->bhv", S, q[:, :, t]))
    return torch.stack(out, dim=2), S
