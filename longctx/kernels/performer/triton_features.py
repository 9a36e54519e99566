"""Triton kernel for the FAVOR+ feature map: one pass over the rows of x, one write of the features.

Per block of BT rows (all batch/head/time rows flattened): ``ℓ = (sqrt(scale) x) Wᵀ - sqrt(scale)² |x|²/2``
accumulated over D in blocks of BD (products in tf32x3 on the GPU: three tf32 products, about float32
accuracy, since a logit error δ becomes a feature error e^δ - 1), then ``a = max_j ℓ_j`` and
``f = exp(ℓ - a)`` stored in the output dtype, ``a`` in float32. The PyTorch form is
``features.positive_features``; this replaces its five float32 passes over ``[rows, m]`` on the inference path.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl


@triton.jit
def _features(x, w, f, a, N, D, M, sqrt_scale, BT: tl.constexpr, BD: tl.constexpr, BM: tl.constexpr,
              ND: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BT + tl.arange(0, BT)
    rmask = rows < N
    cols = tl.arange(0, BM)
    cmask = cols < M
    acc = tl.zeros([BT, BM], dtype=tl.float32)
    sq = tl.zeros([BT], dtype=tl.float32)
    for i in tl.static_range(ND):
        d = i * BD + tl.arange(0, BD)
        dmask = d < D
        xb = tl.load(x + rows[:, None] * D + d[None, :], mask=rmask[:, None] & dmask[None, :], other=0.0)
        xb = xb.to(tl.float32) * sqrt_scale
        wb = tl.load(w + cols[:, None] * D + d[None, :], mask=cmask[:, None] & dmask[None, :], other=0.0)
        acc = tl.dot(xb, tl.trans(wb.to(tl.float32)), acc, input_precision="tf32x3")
        sq += tl.sum(xb * xb, axis=1)
    logits = tl.where(cmask[None, :], acc - 0.5 * sq[:, None], float("-inf"))
    amax = tl.max(logits, axis=1)
    fb = tl.exp(logits - amax[:, None])
    tl.store(f + rows[:, None] * M + cols[None, :], fb.to(f.dtype.element_ty), mask=rmask[:, None] & cmask[None, :])
    tl.store(a + rows, amax, mask=rmask)


def _alloc(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Every buffer the kernel writes (tests replace this to poison them with NaN)."""
    return torch.empty(shape, dtype=dtype, device=device)


def triton_features(x: torch.Tensor, W: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """x: [..., D] contiguous (validated by the caller); W: [M, D] float32 contiguous, M <= 256, D <= 256.
    Returns (f: [..., M] in x's dtype, a: [...] float32), as ``features.positive_features``."""
    D, M = x.shape[-1], W.shape[0]
    N = x.numel() // D
    f = _alloc((*x.shape[:-1], M), x.dtype, x.device)
    a = _alloc(tuple(x.shape[:-1]), torch.float32, x.device)
    BM = max(16, triton.next_power_of_2(M))
    # no register spills on sm_90 (cuobjdump resource report): BD = 16, and 64 x 64 blocks on 4 warps or
    # 32 x 128 / 32 x 256 on 8 (BD = 32, or 64 rows at m = 256, spill: tf32x3 holds three operand splits)
    BT, warps = (64, 4) if BM <= 64 else (32, 8)
    _features[(triton.cdiv(N, BT),)](x, W, f, a, N, D, M, math.sqrt(scale), BT=BT, BD=16, BM=BM,
                                     ND=triton.cdiv(D, 16), num_warps=warps)
    return f, a
