"""HyperAttention (Han et al., 2023): sorted-LSH block-diagonal attention plus uniformly sampled columns.

Layout: q ``[B, H, T, D]``, k/v ``[B, H_kv, T, D]``. Causality is enforced on original positions in
both parts, so no query ever sees a later key.
"""
from longctx.kernels.hyper.ops import hyper_attention

__all__ = ["hyper_attention"]
