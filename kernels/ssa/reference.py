"""Plain-PyTorch ground truth for SSA block selection, written as the obvious per-query-block search.

For every (batch, head, query block) it builds the mean-pooled key-block hierarchy in float64, scores
the top level's nodes, keeps the ``beam`` best, scores their children, and so on down to the leaf key
blocks, where it keeps the ``topk`` best. A node's score is the largest dot product between any query
of the block and the node's mean key. The first block and the ``local`` most recent blocks are always
kept and never counted in the top-k. Returns the same format as ``kernels.ssa.ssa_select``.
"""
from __future__ import annotations

import torch

from kernels.flash.reference import attention_ref, block_mask


def hierarchy_ref(k: torch.Tensor, block_size: int, fanout: int, top_cap: int) -> list[torch.Tensor]:
    """k: [S, D] -> level means, leaf first: level l has ceil(nkb / fanout^l) rows, the last <= top_cap."""
    S = k.shape[0]
    starts = range(0, S, block_size)
    means = [torch.stack([k[s:s + block_size].double().mean(0) for s in starts])]
    sizes = [torch.tensor([min(block_size, S - s) for s in starts], dtype=torch.float64)]
    while means[-1].shape[0] > top_cap:
        m, c = means[-1], sizes[-1]
        groups = range(0, m.shape[0], fanout)
        means.append(torch.stack([(m[g:g + fanout] * c[g:g + fanout, None]).sum(0) / c[g:g + fanout].sum() for g in groups]))
        sizes.append(torch.stack([c[g:g + fanout].sum() for g in groups]))
    return means


def select_ref(q: torch.Tensor, k: torch.Tensor, block_size: int = 64, topk: int = 16, beam: int = 8,
               fanout: int = 8, local: int = 2, top_cap: int = 64) -> torch.Tensor:
    """q: [B, H, T, D], k: [B, H_kv, T, D] -> int64 [B, H, nQB, 1 + local + topk], ascending, -1 padded."""
    B, H, T, _ = q.shape
    group = H // k.shape[1]
    nqb = -(-T // block_size)
    width = 1 + local + topk
    out = torch.full((B, H, nqb, width), -1, dtype=torch.int64)
    for b in range(B):
        for h in range(H):
            levels = hierarchy_ref(k[b, h // group], block_size, fanout, top_cap)
            for qb in range(nqb):
                qs = q[b, h, qb * block_size:(qb + 1) * block_size].double()
                keep = {0} | {qb - i for i in range(local) if qb - i >= 0}
                cand = list(range(levels[-1].shape[0]))
                for lvl in range(len(levels) - 1, -1, -1):
                    span = fanout ** lvl
                    ok = [c for c in cand if c * span <= qb and (lvl > 0 or c not in keep)]
                    scores = {c: (qs @ levels[lvl][c]).max().item() for c in ok}
                    best = sorted(ok, key=lambda c: -scores[c])[: topk if lvl == 0 else beam]
                    if lvl == 0:
                        keep |= set(best)
                    else:
                        n_child = levels[lvl - 1].shape[0]
                        cand = [c * fanout + j for c in best for j in range(fanout) if c * fanout + j < n_child]
                sel = sorted(keep)
                out[b, h, qb, :len(sel)] = torch.tensor(sel)
    return out


def ssa_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int = 64, **kw) -> torch.Tensor:
    """Attention over the reference selection -> [B, H, T, D]."""
    idx = select_ref(q, k, block_size, **kw)
    return attention_ref(q, k, v, mask=block_mask(idx, q.shape[2], block_size))
