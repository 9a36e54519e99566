"""Benchmark cases of the Mamba-2 family, collected by ``evals bench``.

``CASES[name](n, device, dtype, B, H, H_kv, D)`` returns ``(fn, flops)``:
  ``ssd``: the chunked scan with ``H`` heads, head dim ``P = D``, state size ``N = D``, ``H_kv`` groups of
  B/C, chunk 64; FLOPs of the chunked form per head ``4 n N P + 2 n C (N + P)``;
  ``conv1d``: the causal depthwise convolution (width 4, SiLU) over ``H · D`` channels; FLOPs ``2 · 4 · n · H · D``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from longctx.kernels.ssd.ops import causal_conv1d, ssd_chunk_scan

CHUNK = 64


def ssd_inputs(n: int, device, dtype, B: int, H: int, H_kv: int, D: int) -> dict:
    """Random Mamba-2 inputs: x [B, H, n, D], dt [B, H, n] > 0, A [H] < 0, B/C [B, H_kv, n, D], D [H]."""
    return {"x": torch.randn(B, H, n, D, device=device, dtype=dtype),
            "dt": F.softplus(torch.randn(B, H, n, device=device) - 3.0),
            "A": -torch.rand(H, device=device) * 4 - 0.5,
            "B": torch.randn(B, H_kv, n, D, device=device, dtype=dtype) / D ** 0.5,
            "C": torch.randn(B, H_kv, n, D, device=device, dtype=dtype),
            "D": torch.randn(H, device=device)}


def _ssd(n, device, dtype, B, H, H_kv, D):
    x = ssd_inputs(n, device, dtype, B, H, H_kv, D)

    def fn():
        return ssd_chunk_scan(x["x"], x["dt"], x["A"], x["B"], x["C"], x["D"], chunk_size=CHUNK)
    return fn, float(B * H * (4 * n * D * D + 2 * n * CHUNK * 2 * D))


def _conv(n, device, dtype, B, H, H_kv, D):
    x = torch.randn(B, H * D, n, device=device, dtype=dtype)
    w, b = torch.randn(H * D, 4, device=device), torch.randn(H * D, device=device)

    def fn():
        return causal_conv1d(x, w, b, activation="silu")
    return fn, float(2 * 4 * n * B * H * D)


CASES: dict[str, Callable] = {"ssd": _ssd, "conv1d": _conv}
