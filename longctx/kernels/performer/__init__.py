"""Performer family: FAVOR+ positive orthogonal random-feature causal attention.

Layout: q ``[B, H, T, d]``, k ``[B, H_k, T, d]``, v ``[B, H_k, T, D_v]``, random features W ``[m, d]``;
state ``FavorState(kv [B, H, m, D_v + 1] float32, shift [B, H_k])`` carries ``(S, z)`` up to ``exp(shift)``.
Prefill ``favor_attention`` (feature map in PyTorch, then ``kernels.linear``'s scalar-gated chunk kernels:
Triton on CUDA / ``TRITON_INTERPRET=1``), one-token ``favor_step``; training path
``kernels.performer.chunked_torch.favor_chunked``; the definition: ``reference.py``.
"""

from longctx.kernels.performer.chunked_torch import FavorState, favor_chunked, favor_step_torch
from longctx.kernels.performer.features import orthogonal_features
from longctx.kernels.performer.ops import favor_attention, favor_step

__all__ = ["FavorState", "favor_attention", "favor_chunked", "favor_step", "favor_step_torch", "orthogonal_features"]
