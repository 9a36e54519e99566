"""Public FAVOR+ ops: argument checks, then the feature map (``triton_features``) and the causal recurrence
through ``kernels.linear``'s scalar-gated chunk kernels, both Triton on CUDA or under ``TRITON_INTERPRET=1``
(PyTorch on the CPU otherwise). No backward: train with ``chunked_torch.favor_chunked``.

Layout: q ``[B, H, T, d]``, k ``[B, H_k, T, d]``, v ``[B, H_k, T, D_v]`` (H_k divides H: grouped heads),
W ``[m, d]`` from ``features.orthogonal_features``; ``m <= 256`` and ``D_v <= 255`` (the chunk kernels take
key and value widths up to 256; the value gets one extra column for the normaliser).
"""

from __future__ import annotations

import math

import torch

from longctx.kernels.backend import use_triton
from longctx.kernels.linear.ops import FLOATS, check_qkv, gated_linear_attention, recurrent_step
from longctx.kernels.performer.chunked_torch import FavorState, normalise
from longctx.kernels.performer.features import favor_inputs, positive_features


def _check(q, k, v, W, scale, state, step: bool, chunk_size: int | None = None) -> float:
    """Validate shapes, dtypes and devices; return the scale (default d^-1/2)."""
    check_qkv(q, k, v, step)
    if not isinstance(W, torch.Tensor) or W.dim() != 2 or W.dtype not in FLOATS:
        raise ValueError(f"W: expected a floating [m, d] tensor of random features, got "
                         f"{tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__}")
    if len({x.device for x in (q, k, v, W)}) != 1:
        raise ValueError("q, k, v, W: must be on one device")
    B, H, d = q.shape[0], q.shape[1], q.shape[-1]
    m, Dv = W.shape[0], v.shape[-1]
    if W.shape[1] != d or k.shape[-1] != d:
        raise ValueError(f"W, k: feature input dims {W.shape[1]}, {k.shape[-1]} differ from q's head dim {d}")
    if not 1 <= m <= 256:
        raise ValueError(f"W: {m} features; the chunk kernels take 1 to 256")
    if Dv > 255:
        raise ValueError(f"v: head dim {Dv} over 255 (one column is added for the normaliser)")
    if k.shape[0] != B or v.shape[0] != B:
        raise ValueError(f"k, v: batch {k.shape[0]}, {v.shape[0]} differs from q's {B}")
    if k.shape[1] != v.shape[1] or H % k.shape[1]:
        raise ValueError(f"k, v: heads {k.shape[1]}, {v.shape[1]} must be equal and divide q's {H}")
    if not step and not (k.shape[2] == v.shape[2] == q.shape[2]):
        raise ValueError(f"k, v: lengths {k.shape[2]}, {v.shape[2]} differ from q's {q.shape[2]}")
    name = "state" if step else "initial_state"
    if state is not None:
        if not isinstance(state, tuple) or len(state) != 2:
            raise ValueError(f"{name}: expected a FavorState (kv, shift)")
        kv, shift = state
        if tuple(kv.shape) != (B, H, m, Dv + 1) or tuple(shift.shape) != (B, k.shape[1]):
            raise ValueError(f"{name}: shapes {tuple(kv.shape)}, {tuple(shift.shape)}, expected "
                             f"{(B, H, m, Dv + 1)}, {(B, k.shape[1])}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size not in (16, 32, 64, 128)):
        raise ValueError(f"chunk_size: {chunk_size} must be a power of two in [16, 128]")
    scale = d ** -0.5 if scale is None else float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale: {scale} must be a positive finite number")
    if not bool(torch.isfinite(k).all()):  # one pass and one sync: a NaN key would poison the running max
        raise ValueError("k: keys must be finite (a NaN or inf key corrupts the state for every later token)")
    return scale


def _triton_features(x: torch.Tensor, W: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    from longctx.kernels.performer.triton_features import triton_features

    return triton_features(x.contiguous(), W.float().contiguous(), scale)


def _inputs(q, k, v, W, scale, state):
    triton = use_triton(q)
    fq, fk, vw, g, shift = favor_inputs(q, k, v, W, scale, None if state is None else state.shift,
                                        _triton_features if triton else positive_features)
    dt = q.dtype
    return fq.to(dt), fk.to(dt), vw.to(dt), g, shift


def favor_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, W: torch.Tensor, *,
                    scale: float | None = None, initial_state: FavorState | None = None,
                    output_final_state: bool = False,
                    chunk_size: int = 64) -> tuple[torch.Tensor, FavorState | None]:
    """Causal FAVOR+ attention ``o_t = φ(q_t)ᵀ S_t / φ(q_t)ᵀ z_t``, an unbiased-feature estimate of causal
    softmax attention ``softmax(scale · q kᵀ) v`` (exact as m grows).

    q: [B, H, T, d]; k: [B, H_k, T, d]; v: [B, H_k, T, D_v]; W: [m, d]; initial_state: a FavorState
    (kv [B, H, m, D_v + 1] float32, shift [B, H_k]). Returns (o: [B, H, T, D_v] in v's dtype, FavorState or None).
    Usage: ``o, st = favor_attention(q, k, v, orthogonal_features(128, 64, device=q.device), output_final_state=True)``.
    """
    scale = _check(q, k, v, W, scale, initial_state, step=False, chunk_size=chunk_size)
    fq, fk, vw, g, shift = _inputs(q, k, v, W, scale, initial_state)
    kv0 = None if initial_state is None else initial_state.kv.float()
    o, kv = gated_linear_attention(fq, fk, vw, g, scale=1.0, initial_state=kv0, output_final_state=True,
                                   chunk_size=chunk_size)
    o = normalise(o.float()).to(v.dtype)
    return o, (FavorState(kv, shift) if output_final_state else None)


def favor_step(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, W: torch.Tensor, state: FavorState | None, *,
               scale: float | None = None) -> tuple[torch.Tensor, FavorState]:
    """One decoding token at constant cost. q: [B, H, d]; k: [B, H_k, d]; v: [B, H_k, D_v]; state: the
    FavorState of the prefix (None for the first token). Returns (o: [B, H, D_v], new FavorState).
    Usage: ``o, st = favor_step(q[:, :, t], k[:, :, t], v[:, :, t], W, st)``.
    """
    scale = _check(q, k, v, W, scale, state, step=True)
    fq, fk, vw, g, shift = _inputs(q, k, v, W, scale, state)
    if state is None:
        kv0 = q.new_zeros(q.shape[0], q.shape[1], W.shape[0], v.shape[-1] + 1, dtype=torch.float32)
    else:
        kv0 = state.kv.float()
    o, kv = recurrent_step(fq, fk, vw, kv0, g, scale=1.0)
    return normalise(o.float()).to(v.dtype), FavorState(kv, shift)
