"""Ring attention: exact causal attention over a sequence split across the ranks of a process group.

Each rank holds ``n / world`` tokens of q, k, v in the zigzag layout (``zigzag_shard``: rank r holds
chunks r and 2*world-1-r of 2*world equal chunks), so under the causal mask every rank does the same
work. Key/value blocks travel once around the ring through ``torch.distributed`` point-to-point
(NCCL on GPUs, gloo on the CPU); the transfer of the next block is in flight while the current one is
computed. Partial outputs are merged exactly through their log-sum-exp.

Launch one process per device, e.g. ``torchrun --nproc-per-node 2 -m longctx.kernels.ring.bench``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.distributed as dist

from longctx.kernels.ring.reference import block_attention_lse, merge_lse


def zigzag_shard(x: torch.Tensor, rank: int, world: int, dim: int = 2) -> torch.Tensor:
    """The part of ``x`` (``n`` tokens along ``dim``) that ``rank`` holds: chunks rank and 2*world-1-rank.

    x: [B, H, n, D] -> [B, H, n / world, D].  ``q_local = zigzag_shard(q, dist.get_rank(), world)``
    """
    if not isinstance(world, int) or world < 1:
        raise ValueError(f"world must be a positive int, got {world!r}")
    if not isinstance(rank, int) or not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, {world}), got {rank!r}")
    n = x.shape[dim]
    if n % (2 * world):
        raise ValueError(f"sequence length n={n} is not divisible by 2*world={2 * world}: the zigzag layout "
                         f"splits it into {2 * world} equal chunks; pad it to a multiple of {2 * world}")
    chunks = x.chunk(2 * world, dim)
    return torch.cat([chunks[rank], chunks[2 * world - 1 - rank]], dim)


def zigzag_unshard(shards: Sequence[torch.Tensor], dim: int = 2) -> torch.Tensor:
    """Inverse of ``zigzag_shard``: ``shards[r]`` is rank r's part [B, H, n / world, D] -> [B, H, n, D]."""
    world = len(shards)
    halves = [s.chunk(2, dim) for s in shards]
    order = [halves[i][0] for i in range(world)] + [halves[world - 1 - i][1] for i in range(world)]
    return torch.cat(order, dim)


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or k.shape != v.shape:
        raise ValueError(f"q must be [B, H, T, D] and k, v [B, H_kv, T, D], got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}")
    (B, H, T, D), (Bk, H_kv, S, Dk) = q.shape, k.shape
    if (B, T, D) != (Bk, S, Dk) or H % H_kv:
        raise ValueError(f"k/v {tuple(k.shape)} do not match q {tuple(q.shape)}: need the same B, T, D and H % H_kv == 0")
    if T % 2:
        raise ValueError(f"local length T={T} is odd: each rank holds two equal zigzag chunks, so the sequence "
                         "length must be divisible by 2*world (see zigzag_shard)")
    if q.dtype != k.dtype or q.dtype != v.dtype or q.device != k.device or q.device != v.device:
        raise ValueError(f"q, k, v must share dtype and device, got {q.dtype}/{k.dtype}/{v.dtype} on "
                         f"{q.device}/{k.device}/{v.device}")


def _block(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One block with its log-sum-exp: PyTorch's flash kernel on CUDA in half precision, else the reference."""
    if q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
        # the project's flash op returns no log-sum-exp; PyTorch's flash SDPA does (float32, natural log)
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, causal)[:2]
        return out.float(), lse
    return block_attention_lse(q, k, v, causal)


def _diagonal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rank's own block: early chunk (0) and late chunk (1); q1 sees k0 fully and k1 causally."""
    c = q.shape[2] // 2
    o0, l0 = _block(q[:, :, :c], k[:, :, :c], v[:, :, :c], True)
    o1, l1 = _block(q[:, :, c:], k[:, :, c:], v[:, :, c:], True)
    o1, l1 = merge_lse(o1, l1, *_block(q[:, :, c:], k[:, :, :c], v[:, :, :c], False))
    return torch.cat([o0, o1], 2), torch.cat([l0, l1], 2)


def ring_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Causal attention over the whole sequence; each rank passes and gets back its zigzag shard.

    q: [B, H, T, D], k/v: [B, H_kv, T, D] with T = n / world (``zigzag_shard`` layout) -> [B, H, T, D].
    Without an initialised process group it runs on one device (world 1).
    ``o = zigzag_unshard(all_gathered(ring_attention(zigzag_shard(q, r, w), ...)))``
    """
    _check(q, k, v)
    world = dist.get_world_size(group) if dist.is_initialized() else 1
    rank = dist.get_rank(group) if dist.is_initialized() else 0
    c = q.shape[2] // 2
    kv = torch.stack([k, v]).contiguous()
    out = lse = None
    for step in range(world):
        reqs, recv = [], None
        if step < world - 1:
            recv = torch.empty_like(kv)
            nxt, prv = ((rank + d) % world for d in (1, -1))
            if group is not None:
                nxt, prv = dist.get_global_rank(group, nxt), dist.get_global_rank(group, prv)
            reqs = dist.batch_isend_irecv([dist.P2POp(dist.isend, kv, nxt, group),
                                           dist.P2POp(dist.irecv, recv, prv, group)])
        src = (rank - step) % world  # the rank whose chunks src and 2*world-1-src are in kv now
        if step == 0:
            out, lse = _diagonal(q, k, v)
        elif src < rank:  # both local query chunks come after chunk src and before chunk 2w-1-src
            out, lse = merge_lse(out, lse, *_block(q, kv[0, :, :, :c], kv[1, :, :, :c], False))
        else:  # only the late query chunk comes after both key chunks
            late = merge_lse(out[:, :, c:], lse[:, :, c:], *_block(q[:, :, c:], kv[0], kv[1], False))
            out, lse = torch.cat([out[:, :, :c], late[0]], 2), torch.cat([lse[:, :, :c], late[1]], 2)
        for r in reqs:
            r.wait()
        if recv is not None:
            kv = recv
    return out.to(q.dtype)
