"""Triton kernel for the short causal depthwise convolution of Mamba blocks (prefill with conv state).

One program per (batch, channel block, time block): ``W`` shifted loads of a ``[BD, BT]`` tile, time
contiguous; positions before the sequence start read the incoming conv state instead of zeros.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _conv(x, w, bias, s0, y, D, T, W: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_STATE: tl.constexpr,
          SILU: tl.constexpr, BD: tl.constexpr, BT: tl.constexpr):
    b = tl.program_id(0)
    d = tl.program_id(1) * BD + tl.arange(0, BD)
    t = tl.program_id(2) * BT + tl.arange(0, BT)
    dmask = d < D
    tmask = t < T
    x_base = b.to(tl.int64) * D * T
    acc = tl.zeros([BD, BT], dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias + d, mask=dmask, other=0.0).to(tl.float32)[:, None]
    for i in tl.static_range(W):
        ts = t - (W - 1) + i
        xm = dmask[:, None] & (tmask & (ts >= 0))[None, :]
        xs = tl.load(x + x_base + d[:, None] * T + ts[None, :], mask=xm, other=0.0).to(tl.float32)
        if HAS_STATE:
            sm = dmask[:, None] & (tmask & (ts < 0))[None, :]
            xs += tl.load(s0 + b.to(tl.int64) * D * (W - 1) + d[:, None] * (W - 1) + (W - 1 + ts)[None, :],
                          mask=sm, other=0.0).to(tl.float32)
        acc += tl.load(w + d * W + i, mask=dmask, other=0.0).to(tl.float32)[:, None] * xs
    if SILU:
        acc = acc * tl.sigmoid(acc)
    tl.store(y + x_base + d[:, None] * T + t[None, :], acc.to(y.dtype.element_ty),
             mask=dmask[:, None] & tmask[None, :])


def _alloc(like: torch.Tensor) -> torch.Tensor:
    """The output buffer (tests replace this to poison it with NaN)."""
    return torch.empty_like(like)


def conv_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, conv_state: torch.Tensor | None,
                 silu: bool) -> torch.Tensor:
    """Launch on validated, contiguous inputs: x [B, D, T], weight [D, W]. Returns y [B, D, T] in x's dtype."""
    Bsz, D, T = x.shape
    y = _alloc(x)
    BD, BT = 16, 128
    _conv[(Bsz, triton.cdiv(D, BD), triton.cdiv(T, BT))](
        x, weight, x if bias is None else bias, x if conv_state is None else conv_state, y, D, T,
        W=weight.shape[-1], HAS_BIAS=bias is not None, HAS_STATE=conv_state is not None, SILU=silu,
        BD=BD, BT=BT, num_warps=4)
    return y
