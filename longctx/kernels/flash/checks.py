"""Argument checks shared by the attention-family ops.

Every check raises a plain ``ValueError`` naming the argument, before any kernel launch.
"""
from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, same_len: bool = True) -> tuple[int, int, int, int, int]:
    """Validate ``q: [B, H, T, D]``, ``k, v: [B, H_kv, S, D]``; return ``(B, H, H_kv, T, D)``."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D [B, H, T, D], got shape {tuple(t.shape)}")
        if t.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{name} must be float16, bfloat16 or float32, got {t.dtype}")
        if t.dtype != q.dtype:
            raise ValueError(f"{name} dtype {t.dtype} differs from q dtype {q.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name} is on {t.device} but q is on {q.device}")
    B, H, T, D = q.shape
    if k.shape != v.shape:
        raise ValueError(f"k shape {tuple(k.shape)} differs from v shape {tuple(v.shape)}")
    if k.shape[0] != B or k.shape[3] != D:
        raise ValueError(f"k must be [B={B}, H_kv, S, D={D}], got {tuple(k.shape)}")
    H_kv = k.shape[1]
    if H_kv == 0 or H % H_kv:
        raise ValueError(f"k heads H_kv={H_kv} must divide q heads H={H}")
    if same_len and k.shape[2] != T:
        raise ValueError(f"k length {k.shape[2]} differs from q length {T}")
    if D not in (16, 32, 64, 128, 256):
        raise ValueError(f"head dim D={D} must be one of 16, 32, 64, 128, 256")
    if T == 0:
        raise ValueError("q has zero length T")
    return B, H, H_kv, T, D


def check_window(window: int | None) -> None:
    if window is not None and (not isinstance(window, int) or window <= 0):
        raise ValueError(f"window must be a positive int or None, got {window!r}")
