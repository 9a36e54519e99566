"""Plain-PyTorch ground truth for SSA block selection, written as the obvious per-query-block search.

Keys and queries are first written in ``bases`` orthonormal bases (``basis``: the identity, then the
normalised Sylvester-Hadamard matrix), i.e. as ``bases * D`` channels. For every (batch, head) it builds
the key-block hierarchy over those channels in float64: a leaf holds, per channel, the largest and
smallest key value of its ``block_size`` keys; a parent holds the max of its children's maxima and the
min of their minima. For a query q, ``sum_c max(q_c * kmin_c, q_c * kmax_c)`` is then an upper bound on
``bases * (q . k)`` for every key under the node (one Quest bound per basis), so a node holding one
strongly matching key is never under-scored. ``level_rule`` says which channels each level scores: the
leaves the identity basis only; from two levels above the leaves up, a query drops its channels below
``trunc`` times its RMS (there a small channel adds only the noise of random keys' extremes, and the
bound is one on the truncated query's product); a sequence ``trunc`` gives each level its own threshold. A node's score is that bound minus a per-query,
per-level offset (the bound of the level's mean extremes, ``q+ . mean(kmax) + q- . mean(kmin)``),
maximised over the queries of the block:
the offset leaves each query's ranking of nodes unchanged and stops a large-norm query from dominating
the max. With ``qnorm`` each query's centred bound is also divided by the norm of its (truncated) query
over the level's channels, so every query's score has the same noise scale before the max. Each query block scores the top level, keeps the ``top_beam`` best (None: ``beam``), scores their
children, keeps the ``beam`` best, and so on down to the leaf key blocks, where it keeps the ``topk`` best
(with ``exact`` > 0: of the ``exact`` best by bound, the ``topk`` best by the exact max of q . k over the two
blocks). The first block and the ``local`` most recent blocks are always kept and never counted in the top-k. Same output format as ``kernels.ssa.ssa_select``.
"""
from __future__ import annotations

import torch

from longctx.kernels.flash.reference import attention_ref, block_mask

# the shipped selection rule: per-level query truncation (leaves, 256, 1K, 4K+ keys) and unit-norm queries
# before the max over a block; benchmarks/ssa/README_strength.md has the sweep that chose it
TRUNC: tuple[float, ...] = (1.5, 1.75, 2.0, 2.25)
QNORM = True


def basis(D: int, bases: int, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """[D, bases * D]: the identity, then (bases = 2) the normalised Sylvester-Hadamard matrix; D a power of 2."""
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < D:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    mats = [torch.eye(D, dtype=torch.float64), h / D**0.5][:bases]
    return torch.cat(mats, 1).to(dtype=dtype, device=device)


def level_rule(lvl: int, D: int, bases: int, trunc: float | tuple[float, ...],
               trunc_from: int = 2) -> tuple[int, float]:
    """Level lvl (0 = leaves) -> (channels it scores, query truncation): the leaves score the identity basis
    only (D channels), the levels above all ``bases * D``; a number ``trunc``: levels >= ``trunc_from`` (at
    least 1) drop each query channel whose magnitude is below ``trunc`` times the query's RMS (0: none); a
    sequence: level lvl uses ``trunc[lvl]`` (the last entry for the levels above it) and ``trunc_from`` is unused."""
    if isinstance(trunc, (tuple, list)):
        return (D if lvl == 0 else bases * D), float(trunc[min(lvl, len(trunc) - 1)])
    return (D if lvl == 0 else bases * D), (trunc if lvl >= max(1, trunc_from) else 0.0)


def truncate(qs: torch.Tensor, trunc: float) -> torch.Tensor:
    """qs: [..., C] -> qs with the channels below trunc * RMS over its C channels set to 0."""
    if not trunc:
        return qs
    rms = qs.square().mean(-1, keepdim=True).sqrt()
    return torch.where(qs.abs() >= trunc * rms, qs, 0.0)


def hierarchy_ref(k: torch.Tensor, block_size: int, fanout: int, top_cap: int,
                  bases: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """k: [S, D] -> per level (kmax, kmin), each [n_l, bases * D] float64, leaf first; the last level has <= top_cap rows."""
    S = k.shape[0]
    kd = k.double() @ basis(k.shape[1], bases)
    blocks = [kd[s:s + block_size] for s in range(0, S, block_size)]
    levels = [(torch.stack([b.amax(0) for b in blocks]), torch.stack([b.amin(0) for b in blocks]))]
    while levels[-1][0].shape[0] > top_cap:
        hi, lo = levels[-1]
        groups = range(0, hi.shape[0], fanout)
        levels.append((torch.stack([hi[g:g + fanout].amax(0) for g in groups]),
                       torch.stack([lo[g:g + fanout].amin(0) for g in groups])))
    return levels


def node_score(qs: torch.Tensor, hi: torch.Tensor, lo: torch.Tensor, level_hi: torch.Tensor,
               level_lo: torch.Tensor, qnorm: bool = False) -> float:
    """qs: [M, C] queries; hi, lo: [C] a node's bounds; level_*: [n_l, C] its level -> max over queries of
    bound - offset (with qnorm: divided by each query's norm)."""
    bound = torch.maximum(qs * hi, qs * lo).sum(1)
    offset = (qs.clamp(min=0) * level_hi.mean(0)).sum(1) + (qs.clamp(max=0) * level_lo.mean(0)).sum(1)
    score = bound - offset
    if qnorm:
        score = score / qs.norm(dim=1).clamp_min(1e-20)
    return score.max().item()


def select_ref(q: torch.Tensor, k: torch.Tensor, block_size: int = 64, topk: int = 16, beam: int = 64,
               fanout: int = 4, local: int = 2, top_cap: int = 256, top_beam: int | None = 96, bases: int = 2,
               trunc: float | tuple[float, ...] = TRUNC, exact: int = 0, trunc_from: int = 2,
               qnorm: bool = QNORM) -> torch.Tensor:
    """q: [B, H, T, D], k: [B, H_kv, T, D] -> int64 [B, H, nQB, 1 + local + topk], ascending, -1 padded."""
    B, H, T, D = q.shape
    rot = basis(D, bases)
    group = H // k.shape[1]
    nqb = -(-T // block_size)
    width = 1 + local + topk
    out = torch.full((B, H, nqb, width), -1, dtype=torch.int64)
    for b in range(B):
        for h in range(H):
            levels = hierarchy_ref(k[b, h // group], block_size, fanout, top_cap, bases)
            for qb in range(nqb):
                qs = q[b, h, qb * block_size:(qb + 1) * block_size].double() @ rot
                keep = {0} | {qb - i for i in range(local) if qb - i >= 0}
                cand = list(range(levels[-1][0].shape[0]))
                for lvl in range(len(levels) - 1, -1, -1):
                    span = fanout ** lvl
                    width, cut = level_rule(lvl, D, bases, trunc, trunc_from)
                    hi, lo = levels[lvl][0][:, :width], levels[lvl][1][:, :width]
                    ql = truncate(qs[:, :width], cut)
                    ok = [c for c in cand if c * span <= qb and (lvl > 0 or c not in keep)]
                    scores = {c: node_score(ql, hi[c], lo[c], hi, lo, qnorm) for c in ok}
                    keep_n = topk if lvl == 0 else beam if lvl < len(levels) - 1 or top_beam is None else top_beam
                    best = sorted(ok, key=lambda c: -scores[c])
                    if lvl == 0 and exact:
                        kk = k[b, h // group].double()
                        qx = q[b, h, qb * block_size:(qb + 1) * block_size].double()
                        scores = {c: (qx @ kk[c * block_size:(c + 1) * block_size].T).max().item() for c in best[:exact]}
                        best = sorted(best[:exact], key=lambda c: -scores[c])
                    best = best[:keep_n]
                    if lvl == 0:
                        keep |= set(best)
                    else:
                        n_child = levels[lvl - 1][0].shape[0]
                        cand = [c * fanout + j for c in best for j in range(fanout) if c * fanout + j < n_child]
                sel = sorted(keep)
                out[b, h, qb, :len(sel)] = torch.tensor(sel)
    return out


def ssa_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int = 64, **kw) -> torch.Tensor:
    """Attention over the reference selection -> [B, H, T, D]."""
    idx = select_ref(q, k, block_size, **kw)
    return attention_ref(q, k, v, mask=block_mask(idx, q.shape[2], block_size))
