"""Public Mamba-2 ops: the SSD chunked scan and step, and the short causal depthwise convolution.

SSD with scalar decay per head is decayed linear attention with ``q = C``, ``k = B``, ``v = dt · x`` and
log decay ``g = dt · A``: the chunked scan (chunk cumulative sums, intra-chunk products, chunk states,
inter-chunk state passing, output) runs on ``kernels.linear``'s chunk kernels, whose grouped heads take
Mamba-2's shared B/C groups directly; on the Triton path ``dt · A``, ``dt · x`` and ``+ D · x`` happen inside
those kernels. Shapes as in ``reference.py``; the state is ``[B, H, N, P]`` float32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from longctx.kernels.backend import use_triton
from longctx.kernels.linear.ops import check_prefill, gated_linear_attention, recurrent_step


def _check_ssd(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
               D: torch.Tensor | None, step: bool, values: bool = True) -> None:
    nd = 3 if step else 4
    if x.dim() != nd:
        raise ValueError(f"x: expected [B, H, {'' if step else 'T, '}P], got {tuple(x.shape)}")
    lead = x.shape[:-1]
    if tuple(dt.shape) != tuple(lead):
        raise ValueError(f"dt: shape {tuple(dt.shape)}, expected {tuple(lead)}")
    if A.dim() != 1 or A.shape[0] != x.shape[1]:
        raise ValueError(f"A: shape {tuple(A.shape)}, expected [{x.shape[1]}]")
    if D is not None and tuple(D.shape) != (x.shape[1],):
        raise ValueError(f"D: shape {tuple(D.shape)}, expected [{x.shape[1]}]")
    for name, m in (("B", B), ("C", C)):
        if m.dim() != nd or m.shape[0] != x.shape[0] or (not step and m.shape[2] != x.shape[2]) \
                or x.shape[1] % m.shape[1]:
            raise ValueError(f"{name}: shape {tuple(m.shape)}, expected [B, G, {'' if step else 'T, '}N] with "
                             f"G dividing {x.shape[1]}")
    if B.shape != C.shape:
        raise ValueError(f"B, C: shapes {tuple(B.shape)} and {tuple(C.shape)} differ")
    if B.dtype != x.dtype or C.dtype != x.dtype:
        raise ValueError(f"B, C: dtypes {B.dtype}, {C.dtype} must match x's {x.dtype}")
    if not values:
        return
    dmin, dmax, amin, amax = torch.cat([torch.stack(torch.aminmax(dt)).float(),
                                        torch.stack(torch.aminmax(A)).float()]).tolist()
    if not (dmin >= 0 and math.isfinite(dmax)):
        raise ValueError("dt: must be finite and >= 0 (apply softplus first)")
    if not (amax <= 0 and math.isfinite(amin)):
        raise ValueError("A: must be finite and <= 0 (Mamba-2 stores -exp(A_log))")


def ssd_chunk_scan(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   D: torch.Tensor | None = None, *, initial_state: torch.Tensor | None = None,
                   output_final_state: bool = False, chunk_size: int = 64,
                   validate: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mamba-2 SSD prefill. x: [B, H, T, P]; dt: [B, H, T] >= 0; A: [H] <= 0; B, C: [B, G, T, N];
    D: [H]; initial_state: [B, H, N, P]. Returns (y: [B, H, T, P] in x's dtype, final state or None).
    ``validate=False`` skips the range checks of dt and A (a device sync per call); shapes are always checked.
    Usage: ``y, h = ssd_chunk_scan(x, F.softplus(dt + dt_bias), -A_log.exp(), B, C, D, output_final_state=True)``.
    """
    _check_ssd(x, dt, A, B, C, D, step=False, values=validate)
    if use_triton(x):
        from longctx.kernels.linear import triton_chunk

        check_prefill(C, B, x, initial_state, chunk_size)
        s0 = None if initial_state is None else initial_state.float().contiguous()
        y, s, _ = triton_chunk.chunk_forward(C.contiguous(), B.contiguous(), x.contiguous(), dt.contiguous(), None,
                                             1.0, s0, chunk_size, g_scale=A.contiguous(), v_scale=dt.contiguous(),
                                             skip=None if D is None else D.contiguous())
        return y, (s if output_final_state else None)
    g = dt.float() * A.float()[None, :, None]
    v = (x * dt[..., None]).to(x.dtype)
    y, s = gated_linear_attention(C, B, v, g, scale=1.0, initial_state=initial_state,
                                  output_final_state=output_final_state, chunk_size=chunk_size, validate=False)
    if D is not None:
        y = (y + D[:, None, None].to(y.dtype) * x).to(x.dtype)
    return y, s


def ssd_step(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
             state: torch.Tensor, D: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding token. x: [B, H, P]; dt: [B, H]; A: [H]; B, C: [B, G, N]; state: [B, H, N, P].
    Returns (y: [B, H, P], new state [B, H, N, P] float32).
    """
    _check_ssd(x, dt, A, B, C, D, step=True)
    y, s = recurrent_step(C, B, (x * dt[..., None]).to(x.dtype), state, dt.float() * A.float()[None, :],
                          scale=1.0)
    if D is not None:
        y = (y + D[:, None].to(y.dtype) * x).to(x.dtype)
    return y, s


def _check_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, conv_state: torch.Tensor | None,
                activation: str | None, step: bool) -> None:
    nd = 2 if step else 3
    if x.dim() != nd:
        raise ValueError(f"x: expected [B, D{'' if step else ', T'}], got {tuple(x.shape)}")
    if weight.dim() != 2 or weight.shape[0] != x.shape[1] or not 2 <= weight.shape[1] <= 8:
        raise ValueError(f"weight: shape {tuple(weight.shape)}, expected [{x.shape[1]}, W] with 2 <= W <= 8")
    if bias is not None and tuple(bias.shape) != (x.shape[1],):
        raise ValueError(f"bias: shape {tuple(bias.shape)}, expected [{x.shape[1]}]")
    want = (x.shape[0], x.shape[1], weight.shape[1] - 1)
    if (conv_state is not None or step) and (conv_state is None or tuple(conv_state.shape) != want):
        raise ValueError(f"conv_state: shape {None if conv_state is None else tuple(conv_state.shape)}, "
                         f"expected {want}")
    if activation not in (None, "silu"):
        raise ValueError(f"activation: {activation!r}, expected None or 'silu'")


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                  conv_state: torch.Tensor | None = None,
                  activation: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Short causal depthwise conv. x: [B, D, T]; weight: [D, W]; bias: [D]; conv_state: [B, D, W-1].
    Returns (y: [B, D, T] in x's dtype, final conv state [B, D, W-1] for ``causal_conv1d_step``).
    Usage: ``y, cs = causal_conv1d(xBC.transpose(1, 2), w, b, activation="silu")``.
    """
    _check_conv(x, weight, bias, conv_state, activation, step=False)
    W = weight.shape[-1]
    head = x.new_zeros(x.shape[0], x.shape[1], W - 1) if conv_state is None else conv_state.to(x.dtype)
    final = torch.cat([head, x[:, :, -(W - 1):]], dim=-1)[:, :, -(W - 1):]
    if use_triton(x):
        from longctx.kernels.ssd.triton_conv import conv_forward

        y = conv_forward(x.contiguous(), weight.contiguous(), None if bias is None else bias.contiguous(),
                         None if conv_state is None else conv_state.to(x.dtype).contiguous(), activation == "silu")
        return y, final
    y = F.conv1d(torch.cat([head, x], dim=-1), weight[:, None, :].to(x.dtype),
                 None if bias is None else bias.to(x.dtype), groups=x.shape[1])
    return (F.silu(y) if activation == "silu" else y), final


def causal_conv1d_step(x: torch.Tensor, conv_state: torch.Tensor, weight: torch.Tensor,
                       bias: torch.Tensor | None = None, *,
                       activation: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding token. x: [B, D]; conv_state: [B, D, W-1]. Returns (y: [B, D], new conv state)."""
    _check_conv(x, weight, bias, conv_state, activation, step=True)
    window = torch.cat([conv_state.to(x.dtype), x[:, :, None]], dim=-1)
    y = (window * weight.to(x.dtype)).sum(-1)
    if bias is not None:
        y = y + bias.to(x.dtype)
    return (F.silu(y) if activation == "silu" else y), window[:, :, 1:]
