"""DeepSeek Sparse Attention (V3.2): lightning indexer, per-query top-k tokens, sparse attention (Triton).

Layout: q ``[B, H, T, D]``, k/v ``[B, H_kv, T, D]``; indexer queries ``[B, HI, T, DI]``, one shared
indexer key ``[B, T, DI]`` and per-query head weights ``[B, T, HI]``. The indexer is O(T^2) by design.
"""
from longctx.kernels.dsa.ops import dsa_attention, dsa_select, lightning_indexer, sparse_attention

__all__ = ["dsa_attention", "dsa_select", "lightning_indexer", "sparse_attention"]
