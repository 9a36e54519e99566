"""Benchmark cases for the flash family, collected by ``evals bench``.

Each case builds random inputs at length n and returns (zero-argument callable, FLOPs it needs).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from longctx.kernels.flash import decode_attention, flash_attention

WINDOW = 4096


def _inputs(n, device, dtype, B, H, H_kv, D):
    return (torch.randn(B, H, n, D, device=device, dtype=dtype), torch.randn(B, H_kv, n, D, device=device, dtype=dtype),
            torch.randn(B, H_kv, n, D, device=device, dtype=dtype))


def causal_flops(n: int, B: int, H: int, D: int, window: int | None = None) -> float:
    """4 * D FLOPs (two matmuls) per visible (query, key) pair."""
    w = n if window is None else min(window, n)
    pairs = w * (w + 1) // 2 + (n - w) * w
    return 4.0 * B * H * D * pairs


def dense(n, device, dtype, B, H, H_kv, D):
    q, k, v = _inputs(n, device, dtype, B, H, H_kv, D)
    return (lambda: flash_attention(q, k, v)), causal_flops(n, B, H, D)


def window(n, device, dtype, B, H, H_kv, D):
    q, k, v = _inputs(n, device, dtype, B, H, H_kv, D)
    return (lambda: flash_attention(q, k, v, window=WINDOW)), causal_flops(n, B, H, D, WINDOW)


def decode(n, device, dtype, B, H, H_kv, D):
    q, k, v = _inputs(n, device, dtype, B, H, H_kv, D)
    q1 = q[:, :, -1:].contiguous()
    return (lambda: decode_attention(q1, k, v)), 4.0 * B * H * D * n


CASES: dict[str, Callable] = {"flash_dense": dense, "flash_window": window, "flash_decode": decode}
