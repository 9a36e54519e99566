"""Public flash-family ops: argument checks, launch configuration, CPU fallback to the reference."""
from __future__ import annotations

import functools
import math

import torch

from longctx.kernels.backend import interpreting, lazy_module, lazy_names, use_triton
from longctx.kernels.flash import reference
from longctx.kernels.flash.checks import check_qkv, check_window

triton = lazy_module("triton")
_decode, _fwd = lazy_names("longctx.kernels.flash.triton_attn", "_decode", "_fwd")
LOG2E = 1.4426950408889634


@functools.cache
def _fwd_tuned():
    """The dense/window kernel on a GPU, tuned once per (head dim, window or not, dtype), not per length,
    so a benchmark over n pays the tuning only at its first size."""
    configs = [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=st)
               for bm, bn, w, st in [(128, 64, 8, 3), (128, 128, 8, 3), (128, 64, 8, 4), (64, 64, 4, 3)]]
    return triton.autotune(configs=configs, key=["HEAD_D", "HAS_WINDOW"])(_fwd.resolve())


def _launch(q, k, v, window, lut=None, n_full=None, n_all=None, block=None, warps=4):
    """Dense/window when ``lut`` is None (autotuned on a GPU), else block-sparse with square ``block`` tiles."""
    B, H, T, D = q.shape
    S, H_kv = k.shape[2], k.shape[1]
    o = torch.empty_like(q)
    sparse = lut is not None
    if not sparse:
        lut = n_full = n_all = torch.zeros(1, 1, 1, dtype=torch.int32, device=q.device)
    args = (q, k, v, o, lut, n_full, n_all, q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1),
            k.stride(2), v.stride(0), v.stride(1), v.stride(2), o.stride(0), o.stride(1), o.stride(2),
            lut.stride(0), lut.stride(1), lut.stride(2), H, H // H_kv, T, S, window or 0, LOG2E / math.sqrt(D))
    flags = dict(HEAD_D=D, SPARSE=sparse, HAS_WINDOW=window is not None, INTERP=interpreting())
    if sparse or interpreting():
        bm = block or 32
        _fwd[(triton.cdiv(T, bm), B * H)](*args, BLOCK_M=bm, BLOCK_N=bm, num_warps=warps, num_stages=3, **flags)
    else:
        _fwd_tuned()[lambda meta: (triton.cdiv(T, meta["BLOCK_M"]), B * H)](*args, **flags)
    return o


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """Causal attention, dense or over a sliding window of ``window`` keys (query i sees [i-w+1, i]).

    q: [B, H, T, D]; k, v: [B, H_kv, T, D] -> [B, H, T, D].  ``o = flash_attention(q, k, v, window=4096)``
    """
    check_qkv(q, k, v)
    check_window(window)
    if not use_triton(q):
        return reference.attention_ref(q, k, v, window=window)
    return _launch(q.contiguous(), k.contiguous(), v.contiguous(), window)


def block_sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_idx: torch.Tensor,
                           block_size: int = 64) -> torch.Tensor:
    """Causal attention over listed key blocks: query block i sees the key blocks in ``block_idx[b, h, i]``.

    q: [B, H, T, D]; k, v: [B, H_kv, T, D]; block_idx: [B, H, ceil(T/block_size), K] int key-block ids,
    -1 for unused slots (any order; repeats and future blocks are ignored) -> [B, H, T, D].
    ``o = block_sparse_attention(q, k, v, idx, block_size=64)``
    """
    B, H, _, T, _ = check_qkv(q, k, v)
    if block_size not in (16, 32, 64, 128):
        raise ValueError(f"block_size must be 16, 32, 64 or 128, got {block_size}")
    nqb = -(-T // block_size)
    if not isinstance(block_idx, torch.Tensor) or block_idx.dim() != 4 or tuple(block_idx.shape[:3]) != (B, H, nqb):
        shape = tuple(block_idx.shape) if isinstance(block_idx, torch.Tensor) else type(block_idx).__name__
        raise ValueError(f"block_idx must be [B={B}, H={H}, nQB={nqb}, K], got {shape}")
    if block_idx.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"block_idx must be int32 or int64, got {block_idx.dtype}")
    if block_idx.device != q.device:
        raise ValueError(f"block_idx is on {block_idx.device} but q is on {q.device}")
    if not use_triton(q):
        return reference.attention_ref(q, k, v, mask=reference.block_mask(block_idx, T, block_size))
    lut, n_full, n_all = prepare_lut(block_idx, T, block_size)
    return _launch(q.contiguous(), k.contiguous(), v.contiguous(), None, lut, n_full, n_all, block_size,
                   warps=8 if block_size == 128 and not interpreting() else 4)


def prepare_lut(block_idx: torch.Tensor, T: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort each list, drop future and repeated blocks, and count the fully visible ones that need no mask.

    Returns ``lut`` [B, H, nQB, K] int32 (valid ids first, ascending), ``n_full`` and ``n_all`` [B, H, nQB] int32.
    """
    big = torch.iinfo(torch.int64).max
    nkb = -(-T // block_size)
    qb = torch.arange(block_idx.shape[2], device=block_idx.device)[None, None, :, None]
    idx = block_idx.long()
    idx = torch.where((idx >= 0) & (idx <= qb) & (idx < nkb), idx, big).sort(dim=-1).values
    repeat = torch.zeros_like(idx, dtype=torch.bool)
    repeat[..., 1:] = idx[..., 1:] == idx[..., :-1]
    idx = torch.where(repeat, big, idx).sort(dim=-1).values
    valid = idx != big
    lut = torch.where(valid, idx, -1).to(torch.int32).contiguous()
    n_all = valid.sum(-1).to(torch.int32).contiguous()
    n_full = (valid & (idx < qb)).sum(-1).to(torch.int32).contiguous()
    return lut, n_full, n_all


def decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, window: int | None = None,
                     chunk: int = 2048) -> torch.Tensor:
    """A few new queries against a long cache; the queries are the last T of the S cached positions.

    q: [B, H, T, D] with T <= 64; k_cache, v_cache: [B, H_kv, S, D], S >= T -> [B, H, T, D].
    ``o = decode_attention(q[:, :, -1:], k_cache, v_cache)``
    """
    B, H, H_kv, T, D = check_qkv(q, k_cache, v_cache, same_len=False)
    S = k_cache.shape[2]
    check_window(window)
    if T > 64:
        raise ValueError(f"q length T={T} is over 64: use flash_attention for prefill")
    if S < T:
        raise ValueError(f"k_cache length S={S} is shorter than q length T={T}")
    if not isinstance(chunk, int) or chunk <= 0:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    if not use_triton(q):
        return reference.attention_ref(q, k_cache, v_cache, window=window)
    bm = max(16, triton.next_power_of_2(T))
    bn = 32 if interpreting() else 64
    chunk = triton.cdiv(chunk, bn) * bn
    nsp = triton.cdiv(S, chunk)
    q, k_cache, v_cache = q.contiguous(), k_cache.contiguous(), v_cache.contiguous()
    o_part = torch.empty(B, H, nsp, bm, D, dtype=torch.float32, device=q.device)
    lse = torch.empty(B, H, nsp, bm, dtype=torch.float32, device=q.device)
    _decode[(B * H, nsp)](q, k_cache, v_cache, o_part, lse, q.stride(0), q.stride(1), q.stride(2),
                          k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
                          v_cache.stride(0), v_cache.stride(1), v_cache.stride(2), H, H // H_kv, T, S,
                          window or 0, LOG2E / math.sqrt(D), chunk, HEAD_D=D, BLOCK_M=bm, BLOCK_N=bn,
                          HAS_WINDOW=window is not None, INTERP=interpreting(), num_warps=4, num_stages=2)
    # merge the splits: weights 2^(lse_s - max lse), splits that saw no key weigh zero
    lse, o_part = lse[:, :, :, :T], o_part[:, :, :, :T]
    top = lse.amax(2, keepdim=True)
    w = torch.exp2(lse - top.clamp_min(-1e30)).nan_to_num(0.0)
    out = (w[..., None] * o_part).sum(2) / w.sum(2)[..., None].clamp_min(1e-30)
    return out.to(q.dtype)
