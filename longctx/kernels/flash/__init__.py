"""Flash-family attention: dense causal, sliding window, block-sparse, and decode (Triton forward).

Layout: q ``[B, H, T, D]``, k/v ``[B, H_kv, T, D]`` (grouped-query heads). CUDA tensors run the
Triton kernels; CPU tensors run them under ``TRITON_INTERPRET=1`` and otherwise fall back to the
float64 reference in ``kernels.flash.reference``. ``fixed_pattern`` builds sink/local/strided block
lists for ``block_sparse_attention``.
"""
from longctx.kernels.flash.ops import block_sparse_attention, decode_attention, flash_attention
from longctx.kernels.flash.patterns import fixed_pattern

__all__ = ["block_sparse_attention", "decode_attention", "fixed_pattern", "flash_attention"]
