"""SSA: content-routed block selection that never scores every (query, key) pair, then block-sparse flash.

Keys are mean-pooled into leaf blocks of ``block_size`` tokens, and leaf means are pooled again in
groups of ``fanout`` until at most ``top_cap`` nodes remain (L = log_fanout(n / (block_size * top_cap))
levels). Each query block scores every top node, keeps the ``beam`` best, scores only their children,
and so on down to the leaves, where it keeps ``topk`` key blocks. A node's score is the largest dot
product between any query of the block and the node's mean key (so one matching query suffices).
The first block and the ``local`` most recent blocks are always kept.

Selection cost: per query block, (top_cap + L * beam * fanout) candidates of ``block_size * D`` work,
so O(n * (top_cap + beam * fanout * log n) * D) for the whole sequence, i.e. O(n log n); the attention
after it is O(n * (1 + local + topk) * block_size * D). Neither term has an n^2.
"""
from __future__ import annotations

import torch

from kernels.flash import block_sparse_attention
from kernels.flash.checks import check_qkv, use_triton
from kernels.ssa import reference


def _check(T: int, block_size: int, topk: int, beam: int, fanout: int, local: int, top_cap: int) -> None:
    for name, val in (("block_size", block_size), ("topk", topk), ("beam", beam), ("fanout", fanout),
                      ("top_cap", top_cap)):
        if not isinstance(val, int) or val <= 0:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    if block_size not in (16, 32, 64, 128):
        raise ValueError(f"block_size must be 16, 32, 64 or 128, got {block_size}")
    if not isinstance(local, int) or local < 1:
        raise ValueError(f"local must be an int >= 1 (the diagonal block), got {local!r}")
    if fanout < 2:
        raise ValueError(f"fanout must be at least 2, got {fanout}")
    if topk > beam * fanout:
        raise ValueError(f"topk={topk} exceeds beam * fanout = {beam * fanout} leaf candidates")
    if topk * block_size > T:
        raise ValueError(f"topk={topk} blocks of {block_size} is larger than the sequence length n={T}")


def _hierarchy(k: torch.Tensor, block_size: int, fanout: int, top_cap: int) -> list[torch.Tensor]:
    """k: [B, H_kv, T, D] -> level means [B, H_kv, n_l, D] in float32, leaf level first."""
    B, Hk, T, D = k.shape
    nkb = -(-T // block_size)
    pad = nkb * block_size - T
    sums = torch.nn.functional.pad(k.float(), (0, 0, 0, pad)).view(B, Hk, nkb, block_size, D).sum(3)
    counts = torch.full((nkb,), float(block_size), device=k.device)
    counts[-1] = block_size - pad
    means = [sums / counts[:, None]]
    while sums.shape[2] > top_cap:
        n = sums.shape[2]
        groups = -(-n // fanout)
        extra = groups * fanout - n
        sums = torch.nn.functional.pad(sums, (0, 0, 0, extra)).view(B, Hk, groups, fanout, D).sum(3)
        counts = torch.nn.functional.pad(counts, (0, extra)).view(groups, fanout).sum(1)
        means.append(sums / counts[:, None])
    return means


def ssa_select(q: torch.Tensor, k: torch.Tensor, block_size: int = 64, topk: int = 16, beam: int = 8,
               fanout: int = 8, local: int = 2, top_cap: int = 64) -> torch.Tensor:
    """Key blocks per query block, found by a top-down beam search over mean-pooled key summaries.

    q: [B, H, T, D]; k: [B, H_kv, T, D] -> int32 [B, H, ceil(T/block_size), 1 + local + topk]:
    block ids ascending, -1 padded. ``idx = ssa_select(q, k, block_size=64, topk=16)``
    """
    B, H, Hk, T, D = check_qkv(q, k, k)
    _check(T, block_size, topk, beam, fanout, local, top_cap)
    group = H // Hk
    nqb = -(-T // block_size)
    dt = torch.float32 if q.dtype == torch.float32 else q.dtype
    levels = [m.to(dt).repeat_interleave(group, 1) for m in _hierarchy(k, block_size, fanout, top_cap)]
    qt = torch.nn.functional.pad(q.to(dt), (0, 0, 0, nqb * block_size - T)).view(B, H, nqb, block_size, D)
    row_ok = (torch.arange(nqb * block_size, device=q.device) < T).view(1, 1, nqb, block_size, 1)
    qb = torch.arange(nqb, device=q.device).view(1, 1, nqb, 1)
    cand = torch.arange(levels[-1].shape[2], device=q.device).expand(B, H, nqb, -1)
    cand_ok = torch.ones_like(cand, dtype=torch.bool)
    for lvl in range(len(levels) - 1, -1, -1):
        n_l = levels[lvl].shape[2]
        summ = levels[lvl].gather(2, cand.clamp_max(n_l - 1).reshape(B, H, -1, 1).expand(-1, -1, -1, D))
        s = (qt @ summ.view(B, H, nqb, -1, D).transpose(-1, -2)).float()
        s = s.masked_fill(~row_ok, float("-inf")).amax(3)
        ok = cand_ok & (cand * fanout**lvl <= qb)
        if lvl == 0:
            ok &= (cand != 0) & (cand <= qb - local)
        s = s.masked_fill(~ok, float("-inf"))
        val, pos = s.topk(min(topk if lvl == 0 else beam, s.shape[-1]), dim=-1)
        best = cand.gather(-1, pos)
        if lvl > 0:
            cand = (best[..., None] * fanout + torch.arange(fanout, device=q.device)).flatten(-2)
            cand_ok = ((val > float("-inf"))[..., None].expand(-1, -1, -1, -1, fanout).flatten(-2)
                       & (cand < levels[lvl - 1].shape[2]))
    content = torch.where(val > float("-inf"), best, -1)
    if content.shape[-1] < topk:
        content = torch.cat([content, content.new_full((*content.shape[:3], topk - content.shape[-1]), -1)], -1)
    recent = qb - torch.arange(local, device=q.device)
    recent = torch.where(recent >= 1, recent, -1).expand(B, H, nqb, local)
    first = torch.zeros(B, H, nqb, 1, dtype=torch.long, device=q.device)
    idx = torch.cat([first, recent, content], -1)
    big = torch.iinfo(torch.int64).max
    idx = torch.where(idx < 0, big, idx).sort(-1).values
    return torch.where(idx == big, -1, idx).to(torch.int32)


def ssa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int = 64, topk: int = 16,
                  beam: int = 8, fanout: int = 8, local: int = 2, top_cap: int = 64) -> torch.Tensor:
    """Causal attention over the SSA-selected key blocks.

    q: [B, H, T, D]; k, v: [B, H_kv, T, D] -> [B, H, T, D]. ``o = ssa_attention(q, k, v, topk=16)``
    """
    check_qkv(q, k, v)
    _check(q.shape[2], block_size, topk, beam, fanout, local, top_cap)
    if not use_triton(q):
        return reference.ssa_ref(q, k, v, block_size, topk=topk, beam=beam, fanout=fanout, local=local,
                                 top_cap=top_cap)
    idx = ssa_select(q, k, block_size, topk, beam, fanout, local, top_cap)
    return block_sparse_attention(q, k, v, idx, block_size)
