"""CPU simulation of SSA's routing on planted needles: where along the beam search a needle is lost.

One head, D = 128, keys and queries N(0, 1) in float32; needles are planted as ``evals probe`` plants them
(key at t - d replaced by ``strength * q_t``, one needle per query block). Only the needles' query blocks
are routed, with the arithmetic of ``kernels.ssa.select.ssa_select``'s PyTorch path (``_hierarchy`` and
``_scores_torch``), so a point at 1M costs seconds. Per setting it prints the recall (needle's leaf block
kept) and, for the misses, the level that dropped the needle's ancestor (0 = leaves).
Run: ``OMP_NUM_THREADS=1 python benchmarks/ssa/routing_sim.py --n 131072 --strength 1.5``.
"""
from __future__ import annotations

import argparse
import math

import torch

from longctx.kernels.ssa import reference
from longctx.kernels.ssa.select import _hierarchy, _scores_torch

BS, FANOUT, LOCAL = 64, 4, 2


def plant(n: int, D: int, needles: int, strength: float, dists: list[int], gen: torch.Generator):
    """-> q, k [n, D], query blocks [N], needle key positions [N] (N = needles * len(dists))."""
    q, k = torch.randn(n, D, generator=gen), torch.randn(n, D, generator=gen)
    nqb = n // BS
    qbs, keys = [], []
    used: set[int] = set()
    for d in dists:
        lo = -(-d // BS) + 1
        cand = lo + torch.randperm(nqb - lo, generator=gen)
        got = [int(c) for c in cand if int(c) not in used][:needles]
        used.update(got)
        for c in got:
            t = c * BS + int(torch.randint(0, BS, (1,), generator=gen))
            k[t - d] = strength * q[t]
            qbs.append(c)
            keys.append(t - d)
    return q, k, torch.tensor(qbs), torch.tensor(keys)


def route(q, k, qbs, keys, beams: list[int], top_cap: int = 256, bases: int = 2,
          trunc: float | list[float] = 1.5, topk: int = 16, rot: torch.Tensor | None = None, exact: int = 0,
          leaf_bases: bool = False, trunc_from: int = 2, qnorm: bool = False):
    """Beam search for the needle blocks only -> (found [N] bool, level that lost each needle [N], -1 if found).

    beams: the number kept per level from the top (top level first), leaves excluded. ``exact`` > 0: of the
    leaf candidates, the ``exact`` best by bound are rescored by their exact max q.k over the block, and
    the ``topk`` best of those are kept (a second pass). ``trunc`` (a number or per-level list, leaves first),
    ``trunc_from`` and ``qnorm`` as in ``ssa_select``."""
    n, D = k.shape
    rot = reference.basis(D, bases, torch.float32) if rot is None else rot
    levels = _hierarchy((k @ rot)[None, None], BS, FANOUT, top_cap, torch.float32)
    if rot.shape[1] > D and not leaf_bases:
        C = rot.shape[1]
        levels[0] = torch.cat([levels[0][..., :D], levels[0][..., C:C + D]], -1).contiguous()
    N = len(qbs)
    qt = (q.view(n // BS, BS, D)[qbs] @ rot)[None, None]  # [1, 1, N, BS, C]
    row_ok = torch.ones(1, 1, N, BS, 1, dtype=torch.bool)
    qb = qbs.view(1, 1, N, 1)
    cand = torch.arange(levels[-1].shape[2]).expand(1, 1, N, -1)
    leaf = keys // BS
    lost = torch.full((N,), -1)
    L = len(levels)
    for lvl in range(L - 1, -1, -1):
        cut = reference.level_rule(lvl, D, bases, trunc, trunc_from)[1]
        s = _scores_torch(qt, row_ok, levels[lvl], cand, cut, qnorm)
        ok = (cand >= 0) & (cand * FANOUT**lvl <= qb)
        if lvl == 0:
            ok &= (cand != 0) & (cand <= qb - LOCAL)
            if exact:
                had0 = (cand == leaf.view(1, 1, N, 1)).any(-1)[0, 0]
                s = s.masked_fill(~ok, float("-inf"))
                val, pos = s.topk(min(exact, s.shape[-1]), dim=-1)
                cand = torch.where(val > float("-inf"), cand.gather(-1, pos), -1)
                kb = k.view(n // BS, BS, D)[cand.clamp_min(0)[0, 0]]  # [N, E, BS, D]
                qq = q.view(n // BS, BS, D)[qbs]  # [N, BS, D]
                s = torch.einsum("nmd,nebd->nemb", qq, kb).amax((-1, -2))[None, None]
                ok = cand >= 0
        s = s.masked_fill(~ok, float("-inf"))
        width = topk if lvl == 0 else beams[L - 1 - lvl]
        val, pos = s.topk(min(width, s.shape[-1]), dim=-1)
        best = torch.where(val > float("-inf"), cand.gather(-1, pos), -1)
        anc = (leaf // FANOUT**lvl).view(1, 1, N, 1)
        had = had0 if lvl == 0 and exact else (cand == anc).any(-1)[0, 0]
        kept = (best == anc).any(-1)[0, 0]
        lost[had & ~kept & (lost < 0)] = lvl
        if lvl > 0:
            child = (best[..., None] * FANOUT + torch.arange(FANOUT)).flatten(-2)
            keepc = (best >= 0)[..., None].expand(-1, -1, -1, -1, FANOUT).flatten(-2) & (child < levels[lvl - 1].shape[2])
            cand = torch.where(keepc, child, -1)
    near = (qbs - leaf) < LOCAL  # in the local window: always kept
    lost[near] = -1
    return lost < 0, lost, L


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=131072)
    ap.add_argument("--strength", type=float, default=1.5)
    ap.add_argument("--needles", type=int, default=64, help="per distance per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--beams", default="96,64,64,64")
    ap.add_argument("--top-cap", type=int, default=256)
    ap.add_argument("--bases", type=int, default=2)
    ap.add_argument("--trunc", default="1.5", help="a number, or per level from the leaves up (the last repeats)")
    ap.add_argument("--exact", type=int, default=0)
    ap.add_argument("--topk", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--leaf-bases", action="store_true", help="score the leaves in every basis too")
    ap.add_argument("--trunc-from", type=int, default=2, help="lowest level with query truncation (a number --trunc)")
    ap.add_argument("--qnorm", action="store_true", help="scale each query to unit norm before the max over queries")
    a = ap.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(a.seed)
    dists = [d for d in (100, 1000, 10000, 100000, a.n // 2) if d < a.n - 2 * BS]
    beams = [int(b) for b in a.beams.split(",")]
    trunc = [float(t) for t in a.trunc.split(",")]
    trunc = trunc[0] if len(trunc) == 1 else trunc
    found, lost = [], []
    for _ in range(a.rounds):
        q, k, qbs, keys = plant(a.n, 128, a.needles, a.strength, dists, gen)
        f, lo, L = route(q, k, qbs, keys, beams, a.top_cap, a.bases, trunc, topk=a.topk, exact=a.exact,
                         leaf_bases=a.leaf_bases, trunc_from=a.trunc_from, qnorm=a.qnorm)
        found.append(f)
        lost.append(lo)
    f, lo = torch.cat(found), torch.cat(lost)
    per_d = f.view(a.rounds, len(dists), -1).float().mean((0, 2))
    hist = {lvl: int((lo == lvl).sum()) for lvl in range(L)}
    print(f"n={a.n} s={a.strength} beams={a.beams} bases={a.bases} trunc={a.trunc} topk={a.topk} exact={a.exact} leaf_bases={a.leaf_bases} trunc_from={a.trunc_from} qnorm={a.qnorm} levels={L}: "
          f"recall {f.float().mean():.4f} per d {[round(x, 3) for x in per_d.tolist()]} misses by level {hist}")


if __name__ == "__main__":
    main()
