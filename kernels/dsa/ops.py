"""Public DSA ops: checks, chunked indexer + top-k selection, sparse attention, CPU fallback."""
from __future__ import annotations

import math

import torch
import triton

from kernels.dsa import reference
from kernels.dsa.triton_dsa import _indexer, _sparse_attn
from kernels.flash.checks import FLOAT_DTYPES, check_qkv, interpreting, use_triton

_LOG2E = 1.4426950408889634
_BIG = torch.iinfo(torch.int64).max


def _check_indexer(q_idx: torch.Tensor, k_idx: torch.Tensor, w: torch.Tensor, B: int | None = None,
                   T: int | None = None, device: torch.device | None = None) -> tuple[int, int, int, int]:
    for name, t, dim in (("q_idx", q_idx, 4), ("k_idx", k_idx, 3), ("w", w, 3)):
        if not isinstance(t, torch.Tensor) or t.dim() != dim:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a {dim}-D tensor, got {shape}")
        if t.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{name} must be float16, bfloat16 or float32, got {t.dtype}")
        if t.device != q_idx.device or (device is not None and t.device != device):
            raise ValueError(f"{name} is on {t.device}, not on the same device as the other inputs")
    Bi, HI, Ti, DI = q_idx.shape
    if k_idx.dtype != q_idx.dtype:
        raise ValueError(f"k_idx dtype {k_idx.dtype} differs from q_idx dtype {q_idx.dtype}")
    if tuple(k_idx.shape) != (Bi, Ti, DI):
        raise ValueError(f"k_idx must be [B={Bi}, T={Ti}, DI={DI}], got {tuple(k_idx.shape)}")
    if tuple(w.shape) != (Bi, Ti, HI):
        raise ValueError(f"w must be [B={Bi}, T={Ti}, HI={HI}], got {tuple(w.shape)}")
    if DI not in (16, 32, 64, 128):
        raise ValueError(f"indexer dim DI={DI} must be 16, 32, 64 or 128")
    if (B is not None and Bi != B) or (T is not None and Ti != T):
        raise ValueError(f"q_idx must be [B={B}, HI, T={T}, DI], got {tuple(q_idx.shape)}")
    return Bi, HI, Ti, DI


def _check_topk(topk: int, T: int) -> None:
    if not isinstance(topk, int) or topk <= 0:
        raise ValueError(f"topk must be a positive int, got {topk!r}")
    if topk > T:
        raise ValueError(f"topk={topk} is larger than the sequence length n={T}")


def _scores(q_idx, k_idx, w, t0: int, t1: int) -> torch.Tensor:
    """fp32 indexer scores for query rows [t0, t1) against keys [0, t1) -> [B, t1 - t0, t1]."""
    B, HI, T, DI = q_idx.shape
    bm, bn = (32, 32) if interpreting() else (64, 128)
    out = torch.empty(B, t1 - t0, t1, dtype=torch.float32, device=q_idx.device)
    grid = (triton.cdiv(t1 - t0, bm), triton.cdiv(t1, bn), B)
    _indexer[grid](q_idx, k_idx, w, out, q_idx.stride(0), q_idx.stride(1), q_idx.stride(2), k_idx.stride(0),
                   k_idx.stride(1), w.stride(0), w.stride(1), out.stride(0), out.stride(1), T, t0, t1,
                   HI=HI, DI=DI, BLOCK_M=bm, BLOCK_N=bn,
                   # float32 inputs score in full fp32 (not tf32), so selection matches the reference exactly
                   PRECISION="ieee" if q_idx.dtype == torch.float32 else "tf32", num_warps=4, num_stages=2)
    return out


def lightning_indexer(q_idx: torch.Tensor, k_idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Causal indexer scores ``I[t, s] = sum_j w[t, j] relu(q_idx[:, j, t] . k_idx[:, s])``, -inf for s > t.

    q_idx: [B, HI, T, DI]; k_idx: [B, T, DI]; w: [B, T, HI] -> float32 [B, T, T] (O(T^2) memory: small T).
    """
    _check_indexer(q_idx, k_idx, w)
    if not use_triton(q_idx):
        return reference.indexer_ref(q_idx, k_idx, w).float()
    return _scores(q_idx.contiguous(), k_idx.contiguous(), w.contiguous(), 0, q_idx.shape[2])


def dsa_select(q_idx: torch.Tensor, k_idx: torch.Tensor, w: torch.Tensor, topk: int = 2048,
               chunk_elems: int = 1 << 29) -> torch.Tensor:
    """Top-``topk`` keys per query by indexer score, computed over row chunks so memory stays O(chunk * T).

    q_idx: [B, HI, T, DI]; k_idx: [B, T, DI]; w: [B, T, HI] -> int32 [B, T, topk], ascending, -1 where
    query t has fewer than topk keys (t + 1 < topk). ``idx = dsa_select(qi, ki, w, topk=2048)``
    """
    B, _, T, _ = _check_indexer(q_idx, k_idx, w)
    _check_topk(topk, T)
    if not use_triton(q_idx):
        return reference.select_ref(q_idx, k_idx, w, topk).to(torch.int32)
    q_idx, k_idx, w = q_idx.contiguous(), k_idx.contiguous(), w.contiguous()
    out = torch.empty(B, T, topk, dtype=torch.int32, device=q_idx.device)
    rows = max(64, min(T, chunk_elems // (B * T)) // 64 * 64)
    for t0 in range(0, T, rows):
        t1 = min(T, t0 + rows)
        s = _scores(q_idx, k_idx, w, t0, t1)
        if t1 < topk:
            s = torch.cat([s, s.new_full((B, t1 - t0, topk - t1), float("-inf"))], -1)
        val, idx = s.topk(topk, dim=-1, sorted=False)
        idx = torch.where((val == float("-inf")) | (idx >= t1), _BIG, idx.long())
        idx = idx.sort(-1).values
        out[:, t0:t1] = torch.where(idx == _BIG, -1, idx).to(torch.int32)
    return out


def sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Each query attends, in every head, only to its listed keys.

    q: [B, H, T, D]; k, v: [B, H_kv, T, D]; idx: [B, T, K] int key positions (-1 = unused; each must be
    <= its query's position) -> [B, H, T, D].
    """
    B, H, H_kv, T, D = check_qkv(q, k, v)
    if not isinstance(idx, torch.Tensor) or idx.dim() != 3 or tuple(idx.shape[:2]) != (B, T):
        shape = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise ValueError(f"idx must be [B={B}, T={T}, K], got {shape}")
    if idx.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"idx must be int32 or int64, got {idx.dtype}")
    if idx.device != q.device:
        raise ValueError(f"idx is on {idx.device} but q is on {q.device}")
    if not use_triton(q):
        return reference.sparse_attention_ref(q, k, v, idx)
    q, k, v, idx = q.contiguous(), k.contiguous(), v.contiguous(), idx.to(torch.int32).contiguous()
    group = H // H_kv
    o = torch.empty_like(q)
    bn = 32 if interpreting() else 64
    _sparse_attn[(T, B * H_kv)](q, k, v, idx, o, q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1),
                                k.stride(2), v.stride(0), v.stride(1), v.stride(2), idx.stride(0), idx.stride(1),
                                o.stride(0), o.stride(1), o.stride(2), H_kv, group, _LOG2E / math.sqrt(D),
                                KSEL=idx.shape[2], HEAD_D=D, BLOCK_G=max(16, triton.next_power_of_2(group)),
                                BLOCK_N=bn, num_warps=4, num_stages=2)
    return o


def dsa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_idx: torch.Tensor, k_idx: torch.Tensor,
                  w: torch.Tensor, topk: int = 2048) -> torch.Tensor:
    """DeepSeek Sparse Attention: indexer top-k selection, then attention over the selected tokens.

    q: [B, H, T, D]; k, v: [B, H_kv, T, D]; q_idx: [B, HI, T, DI]; k_idx: [B, T, DI]; w: [B, T, HI]
    -> [B, H, T, D]. ``o = dsa_attention(q, k, v, qi, ki, w, topk=2048)``
    """
    B, _, _, T, _ = check_qkv(q, k, v)
    _check_indexer(q_idx, k_idx, w, B, T, q.device)
    _check_topk(topk, T)
    return sparse_attention(q, k, v, dsa_select(q_idx, k_idx, w, topk))
