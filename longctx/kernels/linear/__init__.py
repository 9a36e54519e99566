"""Linear-attention family: plain (feature map), gated (scalar / per-channel log decay), gated delta rule.

Layout (the project's): q, k ``[B, H, T, D_k]``, v ``[B, H, T, D_v]``, state ``[B, H, D_k, D_v]`` float32,
gates ``g`` as log decay ``[B, H, T]`` or ``[B, H, T, D_k]``; each input may carry fewer heads dividing H.
Chunked prefill (Triton on CUDA or under ``TRITON_INTERPRET=1``, chunked PyTorch on CPU) and a one-token
step; initial and final states hand prefill over to decoding. The PyTorch chunked path for training:
``kernels.linear.chunked_torch.chunked_linear_attention``; the naive recurrence: ``reference.py``.
"""

from longctx.kernels.linear.chunked_torch import chunked_linear_attention
from longctx.kernels.linear.ops import (
    FEATURE_MAPS,
    gated_delta_rule,
    gated_linear_attention,
    linear_attention,
    recurrent_step,
)

__all__ = [
    "FEATURE_MAPS",
    "chunked_linear_attention",
    "gated_delta_rule",
    "gated_linear_attention",
    "linear_attention",
    "recurrent_step",
]
