"""FAVOR+ in plain PyTorch, autograd-capable: the chunked prefill the zoo trains with and the one-token step.

Both reduce FAVOR+ to scalar-gated linear attention (``features.favor_inputs``) and run the chunked form of
``kernels.linear.chunked_torch``; computed in float32 (float64 for float64 inputs), no argument checks (the
checked public ops are in ``ops.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from longctx.kernels.linear.chunked_torch import chunked_linear_attention
from longctx.kernels.performer.features import favor_inputs


class FavorState(NamedTuple):
    """The recurrent state after a prefix. True ``[S, z] = exp(shift) · kv`` (``kv[..., :D_v]`` is S, the last
    column z); kv: [B, H, m, D_v + 1] float32 (float64 for float64 inputs), shift: [B, H_k] running max."""

    kv: torch.Tensor
    shift: torch.Tensor


def normalise(o: torch.Tensor) -> torch.Tensor:
    """[..., D_v + 1] numerator and normaliser column -> [..., D_v] output."""
    return o[..., :-1] / o[..., -1:]


def favor_chunked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, W: torch.Tensor, scale: float,
                  initial_state: FavorState | None = None, chunk_size: int = 64) -> tuple[torch.Tensor, FavorState]:
    """q: [B, H, T, d]; k: [B, H_k, T, d]; v: [B, H_k, T, D_v]; W: [m, d]. Returns (o: [B, H, T, D_v] in v's
    dtype, final FavorState)."""
    fq, fk, vw, g, shift = favor_inputs(q, k, v, W, scale, None if initial_state is None else initial_state.shift)
    o, kv = chunked_linear_attention(fq, fk, vw, g, None, 1.0, None if initial_state is None else initial_state.kv,
                                     chunk_size)
    return normalise(o).to(v.dtype), FavorState(kv, shift)


def favor_step_torch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, W: torch.Tensor, scale: float,
                     state: FavorState | None) -> tuple[torch.Tensor, FavorState]:
    """One token: q: [B, H, d]; k: [B, H_k, d]; v: [B, H_k, D_v]; state None (first token) or a FavorState.
    Returns (o: [B, H, D_v] in v's dtype, new FavorState)."""
    fq, fk, vw, g, shift = favor_inputs(q, k, v, W, scale, None if state is None else state.shift)
    H = q.shape[1]
    fk, vw, g = (x.repeat_interleave(H // x.shape[1], dim=1) for x in (fk, vw, g))
    kv = fk[..., :, None] * vw[..., None, :]
    if state is not None:
        kv = kv + state.kv.to(kv.dtype) * g.exp()[..., None, None]
    o = torch.einsum("bhm,bhmv->bhv", fq, kv)
    return normalise(o).to(v.dtype), FavorState(kv, shift)
