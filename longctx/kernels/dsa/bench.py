"""Benchmark cases for DeepSeek Sparse Attention, collected by ``evals bench``.

The indexer uses HI = 4 heads of DI = 64 (one shared indexer key), top-k = 2048 tokens (or n).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from longctx.kernels.dsa import dsa_attention, dsa_select

HI, DI, TOPK = 4, 64, 2048


def _inputs(n, device, dtype, B, H, H_kv, D):
    q, k, v = (torch.randn(B, h, n, D, device=device, dtype=dtype) for h in (H, H_kv, H_kv))
    qi = torch.randn(B, HI, n, DI, device=device, dtype=dtype)
    ki = torch.randn(B, n, DI, device=device, dtype=dtype)
    w = torch.rand(B, n, HI, device=device, dtype=dtype)
    return q, k, v, qi, ki, w


def _indexer_flops(n, B):
    return 2.0 * B * HI * DI * n * (n + 1) / 2


def dsa(n, device, dtype, B, H, H_kv, D):
    q, k, v, qi, ki, w = _inputs(n, device, dtype, B, H, H_kv, D)
    topk = min(TOPK, n)
    pairs = topk * (topk + 1) // 2 + (n - topk) * topk
    return (lambda: dsa_attention(q, k, v, qi, ki, w, topk)), _indexer_flops(n, B) + 4.0 * B * H * D * pairs


def select(n, device, dtype, B, H, H_kv, D):
    _, _, _, qi, ki, w = _inputs(n, device, dtype, B, 1, 1, D)
    return (lambda: dsa_select(qi, ki, w, min(TOPK, n))), _indexer_flops(n, B)


CASES: dict[str, Callable] = {"dsa": dsa, "dsa_select": select}
