"""Benchmark case for HyperAttention, collected by ``evals bench``: blocks of 128, 1024 sampled columns."""
from __future__ import annotations

from collections.abc import Callable

import torch

from longctx.kernels.hyper import hyper_attention

BS, SAMPLES = 128, 1024


def hyper(n, device, dtype, B, H, H_kv, D):
    q, k, v = (torch.randn(B, h, n, D, device=device, dtype=dtype) for h in (H, H_kv, H_kv))
    m = min(SAMPLES, max(1, n // 2))
    return (lambda: hyper_attention(q, k, v, BS, m)), 4.0 * B * H * D * n * (BS + m)


CASES: dict[str, Callable] = {"hyper": hyper}
