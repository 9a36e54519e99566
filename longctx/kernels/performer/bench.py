"""Benchmark cases of the Performer family, collected by ``evals bench``.

``CASES[name](n, device, dtype, B, H, H_kv, D)`` builds fresh random inputs (q ``[B, H, n, D]``, k and v
``[B, H_kv, n, D]``) and ``m = min(256, 2 D)`` orthogonal random features, and returns ``(fn, flops)``:
one FAVOR+ prefill (feature maps, then the scalar-gated chunked recurrence with key width m and value width
``D + 1``). FLOPs: the feature maps ``2 n D m (H + H_kv)`` plus the chunked recurrence's
``kernels.linear.bench.chunk_flops(n, B, H, m, D + 1)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from longctx.kernels.linear.bench import CHUNK, chunk_flops
from longctx.kernels.performer.features import orthogonal_features
from longctx.kernels.performer.ops import favor_attention


def features_for(D: int) -> int:
    """The feature count the bench uses at head dim D (the chunk kernels take up to 256)."""
    return min(256, 2 * D)


def _performer(n, device, dtype, B, H, H_kv, D):
    q = torch.randn(B, H, n, D, device=device, dtype=dtype)
    k, v = (torch.randn(B, H_kv, n, D, device=device, dtype=dtype) for _ in range(2))
    m = features_for(D)
    W = orthogonal_features(m, D, seed=0, device=device)

    def fn():
        return favor_attention(q, k, v, W, chunk_size=CHUNK)
    return fn, float(2 * n * D * m * B * (H + H_kv)) + chunk_flops(n, B, H, m, D + 1, False)


CASES: dict[str, Callable] = {"performer": _performer}
