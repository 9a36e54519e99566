"""Ground truth for FAVOR+ causal attention: the token-by-token recurrence as the paper writes it, with its
implementation's numerical stabiliser ε (``features.STABILIZER``) added to each feature relative to the row's largest
(that term carries no gradient, as there):

    ℓ(x) = W x' - |x'|²/2,   φ(x) = (exp(ℓ(x)) + ε exp(max_j ℓ_j(x))) / sqrt(m),   x' = sqrt(scale) x
    S_t = S_{t-1} + φ(k_t) v_tᵀ,   z_t = z_{t-1} + φ(k_t),   o_t = φ(q_t)ᵀ S_t / φ(q_t)ᵀ z_t

Runs in the dtype it is given (tests use float64 on the CPU, with inputs small enough that the plain
exponentials neither overflow nor underflow). Slow by design: it is the definition.
"""

from __future__ import annotations

import math

import torch

from longctx.kernels.performer.features import STABILIZER


def phi(x: torch.Tensor, W: torch.Tensor, scale: float) -> torch.Tensor:
    """The positive random feature map. x: [..., d]; W: [m, d] -> [..., m]."""
    xs = x * math.sqrt(scale)
    logits = xs @ W.to(x.dtype).T - 0.5 * (xs * xs).sum(-1, keepdim=True)
    return (logits.exp() + STABILIZER * logits.detach().amax(-1, keepdim=True).exp()) / math.sqrt(W.shape[0])


def favor_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, W: torch.Tensor, scale: float,
                    initial_state: tuple[torch.Tensor, torch.Tensor] | None = None
                    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """q: [B, H, T, d]; k: [B, H_k, T, d]; v: [B, H_k, T, D_v]; W: [m, d]; H_k divides H (grouped heads:
    query head h reads key head h // (H // H_k)); initial_state: (S [B, H, m, D_v], z [B, H, m]).

    Returns (o: [B, H, T, D_v], (S, z) after the last token).
    """
    H = q.shape[1]
    k, v = (x.repeat_interleave(H // x.shape[1], dim=1) for x in (k, v))
    fq, fk = phi(q, W, scale), phi(k, W, scale)
    B, _, T, m = fq.shape
    if initial_state is None:
        S, z = q.new_zeros(B, H, m, v.shape[-1]), q.new_zeros(B, H, m)
    else:
        S, z = (x.to(q.dtype).clone() for x in initial_state)
    out = []
    for t in range(T):
        S = S + fk[:, :, t, :, None] * v[:, :, t, None, :]
        z = z + fk[:, :, t]
        num = torch.einsum("bhm,bhmv->bhv", fq[:, :, t], S)
        out.append(num / (fq[:, :, t] * z).sum(-1, keepdim=True))
    return torch.stack(out, dim=2), (S, z)
