"""Public DSA ops: checks, exact fused indexer top-k selection, sparse attention, CPU fallback."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from longctx.kernels.dsa import reference
from longctx.kernels.backend import interpreting, lazy_module, lazy_names, use_triton
from longctx.kernels.flash.checks import FLOAT_DTYPES, check_qkv

triton = lazy_module("triton")
_indexer, _sparse_attn = lazy_names("longctx.kernels.dsa.triton_dsa", "_indexer", "_sparse_attn")
_mask_above, _sample_tau2 = lazy_names("longctx.kernels.dsa.triton_mask", "_mask_above", "_sample_tau2")
_select_rows, = lazy_names("longctx.kernels.dsa.triton_rows", "_select_rows")

_LOG2E = 1.4426950408889634


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


def _scores(q_idx, k_idx, w, t0: int, t1: int, step: int = 1) -> torch.Tensor:
    """fp32 indexer scores for query rows [t0, t1) against keys 0, step, 2 step, ... below t1 -> [B, t1 - t0, ceil(t1 / step)].

    ``k_idx`` is the full [B, T, DI] key tensor when step == 1, else the contiguous k_idx[:, ::step].
    """
    B, HI, _, DI = q_idx.shape
    bm, bn = (32, 32) if interpreting() else (64, 128)
    n_cols = -(-t1 // step)
    out = torch.empty(B, t1 - t0, n_cols, dtype=torch.float32, device=q_idx.device)
    grid = (triton.cdiv(t1 - t0, bm), triton.cdiv(n_cols, bn), B)
    _indexer[grid](q_idx, k_idx, w, out, q_idx.stride(0), q_idx.stride(1), q_idx.stride(2), k_idx.stride(0),
                   k_idx.stride(1), w.stride(0), w.stride(1), out.stride(0), out.stride(1), n_cols, t0, t1,
                   COL_STEP=step, HI=HI, DI=DI, BLOCK_M=bm, BLOCK_N=bn, PRECISION=_precision(q_idx),
                   num_warps=4, num_stages=2)
    return out


@dataclass
class Tiles:
    """Launch shapes of the DSA kernels (module-level ``TILES`` on a GPU, ``INTERP_TILES`` under the interpreter).

    mask_*: ``_mask_above``'s query rows x key columns per tile, warps, stages; tau_steps / tau_warps:
    ``_sample_tau2``'s bisection steps and warps (one row per program); rows_*: ``_select_rows``'s rows per
    program, mask words per step, candidate slots per step (bisection, output), band keys per row per rescoring
    step, warps, stages of its rescoring loop; attn_*: ``_sparse_attn``'s selected keys per step, warps, stages.
    """

    mask_m: int = 64        # the fastest of the swept mask-pass shapes (H100, 128K; README.md beside this file)
    mask_n: int = 64
    mask_warps: int = 4
    mask_stages: int = 3
    tau_steps: int = 12
    tau_warps: int = 8
    rows: int = 1           # one row and one warp per program, 32 programs (the most an SM holds) in flight per
    rows_words: int = 128   # SM: the row stage is latency-bound (14.7 ms against 22.2 at 4 rows / 4 warps, 128K,
    rows_slots: int = 128   # README.md); offline sm_90 compile: 66 registers, no spills, 6 KB shared
    rows_rescore: int = 32
    rows_warps: int = 1
    rows_stages: int = 2
    attn_n: int = 32
    attn_warps: int = 2
    attn_stages: int = 3


TILES = Tiles()
# four rows per program and short word / slot steps, so small interpreter shapes cover part-filled programs and loops
INTERP_TILES = Tiles(mask_m=32, mask_n=32, rows=4, rows_words=4, rows_slots=32, rows_rescore=8, attn_n=32)
# int32 words per row chunk (masks, scratch, sampled scores): at most this many keeps a chunk's masks under 2^31
# bytes, the most the kernels' int32 offsets address (all 128K rows' masks at once: an illegal memory access)
MAX_CHUNK_ELEMS = 1 << 29
# sampled rows longer than this take torch.topk for their threshold (one Triton program holds a whole row)
MAX_SAMPLE_BLOCK = 16384
# queries of all indexer heads of a tile stay on chip across the key loop up to this many bytes
HOIST_BYTES = 64 * 1024


def _tiles() -> Tiles:
    return INTERP_TILES if interpreting() else TILES


def _precision(t: torch.Tensor) -> str:
    # float32 inputs score in full fp32 (not tf32), so selection matches the reference exactly
    return "ieee" if t.dtype == torch.float32 else "tf32"


def lightning_indexer(q_idx: torch.Tensor, k_idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Causal indexer scores ``I[t, s] = sum_j w[t, j] relu(q_idx[:, j, t] . k_idx[:, s])``, -inf for s > t.

    q_idx: [B, HI, T, DI]; k_idx: [B, T, DI]; w: [B, T, HI] -> float32 [B, T, T] (O(T^2) memory: small T).
    """
    _check_indexer(q_idx, k_idx, w)
    if not use_triton(q_idx):
        return reference.indexer_ref(q_idx, k_idx, w).float()
    return _scores(q_idx.contiguous(), k_idx.contiguous(), w.contiguous(), 0, q_idx.shape[2])


def dsa_select(q_idx: torch.Tensor, k_idx: torch.Tensor, w: torch.Tensor, topk: int = 2048,
               chunk_elems: int = MAX_CHUNK_ELEMS, sample_step: int | None = None) -> torch.Tensor:
    """Top-``topk`` keys per query by indexer score, exact, without writing the [T, T] scores.

    Per row chunk: thresholds per row from every ``sample_step``-th key's score (default
    ``clamp(topk // 128, 1, 16)``), then one fused pass that recomputes the scores tile by tile and keeps
    the keys above the thresholds as bit masks (about 1.5 ``topk`` per row, ``triton_mask``), then the exact
    top-k of the kept keys per row (``triton_rows``); rows whose kept count cannot hold their top-k are
    recomputed exactly. Memory
    O(chunk * (T / sample_step + T / 16 + topk)); indexer FLOPs stay O(T^2).
    q_idx: [B, HI, T, DI]; k_idx: [B, T, DI]; w: [B, T, HI] -> int32 [B, T, topk], ascending, -1 where
    query t has fewer than topk keys (t + 1 < topk). ``idx = dsa_select(qi, ki, w, topk=2048)``
    """
    B, _, T, _ = _check_indexer(q_idx, k_idx, w)
    _check_topk(topk, T)
    step = max(1, min(16, topk // 128)) if sample_step is None else sample_step
    if not isinstance(step, int) or step <= 0:
        raise ValueError(f"sample_step must be a positive int or None, got {sample_step!r}")
    if not isinstance(chunk_elems, int) or not 0 < chunk_elems <= MAX_CHUNK_ELEMS:
        raise ValueError(f"chunk_elems must be a positive int <= 2^29 (the kernels address a row chunk's masks and "
                         f"scratch with int32 offsets), got {chunk_elems!r}")
    if not use_triton(q_idx):
        return reference.select_ref(q_idx, k_idx, w, topk).to(torch.int32)
    q_idx, k_idx, w = q_idx.contiguous(), k_idx.contiguous(), w.contiguous()
    cap = triton.next_power_of_2(2 * topk)
    # the sample's r-th largest score sits near the row's (1.5 topk)-th: about 1.5 topk scores pass, within cap
    r = -(-3 * topk // (2 * step))
    k_sample = k_idx[:, ::step].contiguous()
    out = torch.empty(B, T, topk, dtype=torch.int32, device=q_idx.device)
    rows = _chunk_rows(B, T, step, cap, chunk_elems)
    for t0 in range(0, T, rows):
        t1 = min(T, t0 + rows)
        pos = torch.arange(t0, t1, device=q_idx.device)
        words = _masks(q_idx, k_idx, k_sample, w, t0, t1, step, r, cap, topk)
        counts = _rows(q_idx, k_idx, w, words, t0, cap, topk, out)
        redo = (counts > cap) | (counts < (pos + 1).clamp_max(topk))
        for b, t in redo.nonzero().tolist():
            out[b, t0 + t] = _exact_row(q_idx[b], k_idx[b], w[b], t0 + t, topk)
    return out


def _chunk_rows(B: int, T: int, step: int, cap: int, chunk_elems: int = MAX_CHUNK_ELEMS) -> int:
    """Query rows per chunk of ``dsa_select``: a multiple of 64 whose int32 words fit chunk_elems. Per row: T / 16
    words of masks, 3 cap of scratch, T / step sampled scores."""
    per_row = max(-(-T // step), T // 16 + 1, 3 * cap)
    return max(64, min(T, chunk_elems // (B * per_row)) // 64 * 64)


def _row_ranges(r0: int, r1: int, unit: int, min_block: int):
    """Split rows [r0, r1) into runs whose ``t // unit + 1`` fits one power-of-two block -> (start, end, block)."""
    while r0 < r1:
        block = max(min_block, triton.next_power_of_2(r0 // unit + 1))
        end = min(r1, block * unit)
        yield r0, end, block
        r0 = end


def _sample_thresholds(q_idx, k_sample, w, t0: int, t1: int, step: int, r_lo: int, r_hi: int) -> torch.Tensor:
    """Rows [t0, t1) (all >= cap): thresholds near the r_lo-th and r_hi-th largest sampled scores -> fp32 [B, 2, n]."""
    s = _scores(q_idx, k_sample, w, t0, t1, step)
    B, n, n_cols = s.shape
    if triton.next_power_of_2(n_cols) > MAX_SAMPLE_BLOCK:
        v = s.topk(min(r_lo, n_cols), dim=-1).values
        return torch.stack([v[..., -1], v[..., min(r_hi, n_cols) - 1]], 1)
    tau = torch.empty(B, 2, n, dtype=torch.float32, device=s.device)
    for a, e, block in _row_ranges(t0, t1, step, 16):
        _sample_tau2[(e - a, B)](s, tau, n, n_cols, a - t0, s.stride(0), s.stride(1), tau.stride(0), tau.stride(1),
                                 r_lo, r_hi, BLOCK=block, STEPS=_tiles().tau_steps, num_warps=_tiles().tau_warps)
    return tau


def _masks(q_idx, k_idx, k_sample, w, t0: int, t1: int, step: int, r_lo: int, cap: int, topk: int) -> torch.Tensor:
    """Rows [t0, t1): two thresholds per row, then the bit masks of the scores above them (``_mask_above``)
    -> int32 words [B, t1 - t0, 2, T / 32 rounded up to the tile]: bit j of word i = key 32 i + j."""
    B, HI, T, DI = q_idx.shape
    n, dev, c = t1 - t0, q_idx.device, _tiles()
    tau = torch.full((B, 2, n), float("-inf"), device=dev)  # rows with t + 1 <= cap keep every key
    if t1 > cap:
        a = max(t0, cap)
        # lo: r_lo (about 1.5 topk of the row's scores pass); hi: about 0.75 topk, the sure part of the top-k
        r_hi = max(1, 3 * topk // (4 * step))
        tau[:, :, a - t0:] = _sample_thresholds(q_idx, k_sample, w, a, t1, step, r_lo, r_hi)
    nbytes = triton.cdiv(T, c.mask_n) * c.mask_n // 8
    mask = torch.empty(B, n, 2, nbytes, dtype=torch.uint8, device=dev)
    hoist = HI * c.mask_m * DI * q_idx.element_size() <= HOIST_BYTES
    _mask_above[(triton.cdiv(n, c.mask_m), B)](
        q_idx, k_idx, w, tau, mask, q_idx.stride(0), q_idx.stride(1), q_idx.stride(2), k_idx.stride(0),
        k_idx.stride(1), w.stride(0), w.stride(1), tau.stride(0), tau.stride(1), mask.stride(0), mask.stride(1),
        mask.stride(2), T, t0, t1, HI=HI, DI=DI, BLOCK_M=c.mask_m, BLOCK_N=c.mask_n, NB=max(16, c.mask_n // 8),
        PRECISION=_precision(q_idx), HOIST=hoist, INTERP=interpreting(), num_warps=c.mask_warps,
        num_stages=c.mask_stages)
    return mask.view(torch.int32)


def _rows(q_idx, k_idx, w, words: torch.Tensor, t0: int, cap: int, topk: int, out: torch.Tensor,
          upto: int = 5) -> torch.Tensor:
    """The row stage (``_select_rows``) on the masks ``words`` [B, n, 2, W] of rows [t0, t0 + n): the exact top-k
    into out[:, t0:t0 + n] -> candidate counts [B, n] (rows outside [min(topk, t + 1), cap] are wrong); ``upto``
    < 5 stops after that step (the per-step timing of ``benchmarks/dsa/device_run_floors.py``)."""
    B, HI, T, DI = q_idx.shape
    n, dev, c = words.shape[1], q_idx.device, _tiles()
    scratch = torch.empty(3, B, n, cap, dtype=torch.int32, device=dev)
    cid, bid, key = scratch[0], scratch[1], scratch[2]
    counts = torch.empty(B, n, dtype=torch.int32, device=dev)
    dst = out[:, t0:t0 + n]
    _select_rows[(triton.cdiv(n, c.rows), B)](
        words, q_idx, k_idx, w, cid, bid, key, counts, dst, n, t0, words.stride(0), words.stride(1), words.stride(2),
        q_idx.stride(0), q_idx.stride(1), q_idx.stride(2), k_idx.stride(0), k_idx.stride(1), w.stride(0),
        w.stride(1), cid.stride(0), cid.stride(1), counts.stride(0), dst.stride(0), dst.stride(1), topk, HI=HI,
        DI=DI, HP=max(16, triton.next_power_of_2(HI * c.rows)), ROWS=c.rows, WCH=c.rows_words,
        SCH=c.rows_slots, CAP=cap, RCH=c.rows_rescore, PRECISION=_precision(q_idx), INTERP=interpreting(),
        UPTO=upto, num_warps=c.rows_warps, num_stages=c.rows_stages)
    return counts


def _exact_row(q_idx: torch.Tensor, k_idx: torch.Tensor, w: torch.Tensor, t: int, topk: int) -> torch.Tensor:
    """One query's top-k by fp32 scores in PyTorch (rows the threshold pass could not settle) -> int32 [topk]."""
    s = torch.einsum("hd,sd->hs", q_idx[:, t].float(), k_idx[: t + 1].float()).relu()
    s = (s * w[t].float()[:, None]).sum(0)
    idx = s.topk(min(topk, t + 1)).indices.sort().values.to(torch.int32)
    return torch.cat([idx, idx.new_full((topk - idx.shape[0],), -1)])


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
    c = _tiles()
    _sparse_attn[(T, B * H_kv)](q, k, v, idx, o, q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1),
                                k.stride(2), v.stride(0), v.stride(1), v.stride(2), idx.stride(0), idx.stride(1),
                                o.stride(0), o.stride(1), o.stride(2), H_kv, group, _LOG2E / math.sqrt(D),
                                KSEL=idx.shape[2], HEAD_D=D, BLOCK_G=max(16, triton.next_power_of_2(group)),
                                BLOCK_N=c.attn_n, num_warps=c.attn_warps, num_stages=c.attn_stages)
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
