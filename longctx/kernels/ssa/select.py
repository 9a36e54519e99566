"""SSA: content-routed block selection that never scores every (query, key) pair, then block-sparse flash.

Keys and queries are first written in ``bases`` orthonormal bases (default 2: the identity and the
normalised Hadamard matrix), i.e. as C = bases * D channels. Keys are summarised per leaf block of
``block_size`` tokens by their per-channel maxima and minima over those channels, and leaf bounds are
merged again in groups of ``fanout`` (max of maxima, min of minima) until at most ``top_cap`` nodes
remain: L = ceil(log_fanout(n / (block_size * top_cap))) + 1 levels. For a query q, ``q+ . kmax + q- .
kmin`` is then the sum of one Quest-style upper bound on ``q . k`` per basis, over every key under a node,
so a node holding one strongly matching key is never under-scored, whatever else it holds. One strong
key lifts a node's extremes only in the channels where the query is large; a second basis gives it a
second, independent set of such channels, so it is far less often hidden among the extremes of thousands
of random keys. The leaves score the identity basis only (64 keys: one is seldom hidden there). From two
levels above the leaves up (``trunc_from``; default 2: nodes of fanout^2 blocks and more), each query drops its channels below
``trunc`` times its RMS: a small channel adds only the noise of the random keys' extremes there (the
bound is then one on the truncated query's product); a sequence ``trunc`` sets the threshold of every level,
leaves first (the last entry for the levels above). Why and how much: kernels/ssa/README.md. Each
level's bounds are centred by that level's mean bounds (a per-query offset: rankings per query are
unchanged), and a node's score is the max over the query block's queries; with ``qnorm`` each query's
centred bound is first divided by the norm of its (truncated) query over the level's channels, so every query
enters the max with the same noise scale (a query with many large channels no longer wins it by its noise). Each query block scores every
top node, keeps the ``top_beam`` best (None: ``beam``), scores only their children, keeps the ``beam``
best, and so on down to the leaves, where it keeps ``topk`` key blocks. With ``exact`` > 0 the leaves get a
second pass: the ``exact`` best leaf candidates by bound are rescored by their exact ``max q . k`` over the
query block and the key block, and the ``topk`` best of those are kept (a bound over 64 keys still lets a
faint needle's block rank below random ones; its exact score does not). The first block and the ``local``
most recent blocks are always kept. ``top_cap=64, top_beam=None, bases=1, trunc=0`` is the v2 rule.

Selection cost, per query block (L >= 3): top_cap + (top_beam + (L - 3) * beam) * fanout node scores of
``block_size * 2C`` multiply-adds and beam * fanout leaf scores of ``block_size * 2D`` (defaults at 1M:
(256 + 384 + 256) * 2 + 256 = 2048 in units of a 2D-wide score, v2: 1088), so O(n * (top_cap + (top_beam
+ beam * log n) * fanout) * bases * D) for the sequence, i.e. O(n log n), plus ``exact * block_size * 2D``
multiply-adds per query of the second pass, plus O(n D (D + bases)) to rotate the keys and
queries and build the bounds; the attention after it is O(n * (1 + local + topk) * block_size * D).
Neither term has an n^2. On CUDA (or under ``TRITON_INTERPRET=1``) a Triton kernel scores each level
without materialising the gathered bounds; elsewhere the same arithmetic runs as PyTorch gathers and matmuls.
"""
from __future__ import annotations

import torch

from longctx.kernels.flash import block_sparse_attention
from longctx.kernels.backend import interpreting, lazy_names, use_triton
from longctx.kernels.flash.checks import check_qkv
from longctx.kernels.ssa import reference

_bound_scores, _exact_scores = lazy_names("longctx.kernels.ssa.triton_score", "_bound_scores", "_exact_scores")


def _check(T: int, block_size: int, topk: int, beam: int, fanout: int, local: int, top_cap: int,
           top_beam: int | None, bases: int, trunc: float | tuple[float, ...], exact: int = 0,
           trunc_from: int = 2, qnorm: bool = False) -> None:
    for name, val in (("block_size", block_size), ("topk", topk), ("beam", beam), ("fanout", fanout),
                      ("top_cap", top_cap), ("top_beam", beam if top_beam is None else top_beam)):
        if not isinstance(val, int) or val <= 0:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    if block_size not in (16, 32, 64, 128):
        raise ValueError(f"block_size must be 16, 32, 64 or 128, got {block_size}")
    if not isinstance(local, int) or local < 1:
        raise ValueError(f"local must be an int >= 1 (the diagonal block), got {local!r}")
    if bases not in (1, 2):
        raise ValueError(f"bases must be 1 (identity) or 2 (identity and Hadamard), got {bases!r}")
    cuts = list(trunc) if isinstance(trunc, (tuple, list)) and trunc else [trunc]
    if any(not isinstance(c, (int, float)) or isinstance(c, bool) or not 0 <= c < 100 for c in cuts):
        raise ValueError(f"trunc must be a number in [0, 100) or a non-empty sequence of them, got {trunc!r}")
    if not isinstance(qnorm, bool):
        raise ValueError(f"qnorm must be a bool, got {qnorm!r}")
    if not isinstance(trunc_from, int) or isinstance(trunc_from, bool) or trunc_from < 1:
        raise ValueError(f"trunc_from must be an int >= 1 (the leaves are never truncated), got {trunc_from!r}")
    if fanout < 2:
        raise ValueError(f"fanout must be at least 2, got {fanout}")
    if not isinstance(exact, int) or isinstance(exact, bool) or exact < 0 or 0 < exact < topk:
        raise ValueError(f"exact must be 0 (off) or an int >= topk={topk}, got {exact!r}")
    if topk > beam * fanout:
        raise ValueError(f"topk={topk} exceeds beam * fanout = {beam * fanout} leaf candidates")
    if topk * block_size > T:
        raise ValueError(f"topk={topk} blocks of {block_size} is larger than the sequence length n={T}")


def _hierarchy(k: torch.Tensor, block_size: int, fanout: int, top_cap: int, dt: torch.dtype) -> list[torch.Tensor]:
    """k: [B, H_kv, T, C] (keys in the bases' C channels) -> per level, leaf first, centred bounds
    [B, H_kv, n_l, 2C] = [kmax - mean | kmin - mean]."""
    B, Hk, T, D = k.shape
    nkb = -(-T // block_size)
    pad = nkb * block_size - T
    pad_to = (lambda x, v: torch.nn.functional.pad(x, (0, 0, 0, pad), value=v)) if pad else (lambda x, v: x)
    hi = pad_to(k, float("-inf")).view(B, Hk, nkb, block_size, D).amax(3).float()
    lo = pad_to(k, float("inf")).view(B, Hk, nkb, block_size, D).amin(3).float()
    levels = []
    while True:
        levels.append(torch.cat([hi - hi.mean(2, keepdim=True), lo - lo.mean(2, keepdim=True)], -1).to(dt).contiguous())
        n = hi.shape[2]
        if n <= top_cap:
            return levels
        groups = -(-n // fanout)
        extra = groups * fanout - n
        hi = torch.nn.functional.pad(hi, (0, 0, 0, extra), value=float("-inf")).view(B, Hk, groups, fanout, D).amax(3)
        lo = torch.nn.functional.pad(lo, (0, 0, 0, extra), value=float("inf")).view(B, Hk, groups, fanout, D).amin(3)


def _scores_torch(qt: torch.Tensor, row_ok: torch.Tensor, table: torch.Tensor, cand: torch.Tensor,
                  trunc: float, qnorm: bool = False) -> torch.Tensor:
    """qt: [B, H, nQB, M, >= W]; table: [B, H_kv, n_l, 2W]; cand: [B, H, nQB, C] (-1 unused) -> float32 [B, H, nQB, C].

    Scores the first W = table.shape[-1] // 2 channels of the queries, truncated as ``reference.truncate``
    (with qnorm: each query scaled to unit norm over them first)."""
    D = table.shape[-1] // 2
    qt = reference.truncate(qt[..., :D], trunc)
    if qnorm:
        qt = qt / qt.float().norm(dim=-1, keepdim=True).clamp_min(1e-20).to(qt.dtype)
    B, H, nqb = qt.shape[:3]
    table = table.repeat_interleave(H // table.shape[1], 1)
    rows = table.gather(2, cand.clamp_min(0).reshape(B, H, -1, 1).expand(-1, -1, -1, 2 * D))
    rows = rows.view(B, H, nqb, -1, 2 * D).transpose(-1, -2)
    s = (qt.clamp(min=0) @ rows[..., :D, :] + qt.clamp(max=0) @ rows[..., D:, :]).float()
    s = s.masked_fill(~row_ok, float("-inf")).amax(3)
    return s.masked_fill(cand < 0, float("-inf"))


def _exact_torch(qt: torch.Tensor, row_ok: torch.Tensor, k: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """qt: [B, H, nQB, M, >= D]; k: [B, H_kv, T, D]; cand: [B, H, nQB, C] key blocks of M keys (-1 unused)
    -> float32 [B, H, nQB, C]: max of q . k over the query block's rows and the key block's keys."""
    B, H, nqb, M = qt.shape[:4]
    T, D = k.shape[2], k.shape[3]
    nkb = -(-T // M)
    kp = torch.nn.functional.pad(k, (0, 0, 0, nkb * M - T)).view(B, k.shape[1], nkb, M, D)
    kp = kp.repeat_interleave(H // k.shape[1], 1)
    key_ok = (torch.arange(nkb * M, device=k.device) < T).view(nkb, M)
    q = qt[..., :D]
    out = []
    for c in cand.unbind(-1):  # one candidate slot at a time: [B, H, nQB, M, M] scores, never [.., C, M, M]
        kb = kp.gather(2, c.clamp_min(0)[..., None, None].expand(-1, -1, -1, M, D))
        s = (q @ kb.transpose(-1, -2)).float()
        s = s.masked_fill(~row_ok | ~key_ok[c.clamp_min(0)][..., None, :], float("-inf")).amax((-1, -2))
        out.append(s.masked_fill(c < 0, float("-inf")))
    return torch.stack(out, -1)


def _exact_triton(q: torch.Tensor, k: torch.Tensor, cand: torch.Tensor, block_size: int) -> torch.Tensor:
    """q: [B, H, T, >= D] (first D channels read); k: [B, H_kv, T, D]; cand: int32 [B, H, nQB, C] -> float32 [B, H, nQB, C]."""
    B, H, T = q.shape[:3]
    nqb, nc = cand.shape[2], cand.shape[3]
    out = torch.empty(B, H, nqb, nc, dtype=torch.float32, device=q.device)
    _exact_scores[(nqb, B * H)](q, k, cand, out, q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1),
                                k.stride(2), cand.stride(0), cand.stride(1), cand.stride(2), out.stride(0),
                                out.stride(1), out.stride(2), H, H // k.shape[1], T, NC=nc, HEAD_D=k.shape[3],
                                BLOCK_M=block_size, PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
                                num_warps=4, num_stages=2)
    return out


def _scores_triton(q: torch.Tensor, table: torch.Tensor, cand: torch.Tensor, block_size: int,
                   trunc: float, qnorm: bool = False) -> torch.Tensor:
    """q: [B, H, T, >= W]; table: [B, H_kv, n_l, 2W]; cand: int32 [B, H, nQB, C] -> float32 [B, H, nQB, C]."""
    B, H, T = q.shape[:3]
    D = table.shape[-1] // 2
    nqb, nc = cand.shape[2], cand.shape[3]
    out = torch.empty(B, H, nqb, nc, dtype=torch.float32, device=q.device)
    _bound_scores[(nqb, B * H)](q, table, cand, out, q.stride(0), q.stride(1), q.stride(2), table.stride(0),
                                table.stride(1), table.stride(2), cand.stride(0), cand.stride(1), cand.stride(2),
                                out.stride(0), out.stride(1), out.stride(2), H, H // table.shape[1], T,
                                NC=nc, HEAD_D=D, BLOCK_M=block_size, BLOCK_C=16 if interpreting() else 32, TRUNC=float(trunc), QNORM=qnorm,
                                # float32 inputs score in full fp32 (not tf32), so selection matches the reference
                                PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
                                num_warps=8 if D >= 256 else 4, num_stages=2)
    return out


def ssa_select(q: torch.Tensor, k: torch.Tensor, block_size: int = 64, topk: int = 16, beam: int = 64,
               fanout: int = 4, local: int = 2, top_cap: int = 256, top_beam: int | None = 96, bases: int = 2,
               trunc: float | tuple[float, ...] = reference.TRUNC, exact: int = 0, trunc_from: int = 2,
               qnorm: bool = reference.QNORM) -> torch.Tensor:
    """Key blocks per query block, found by a top-down beam search over per-channel key bounds in ``bases`` bases.

    q: [B, H, T, D]; k: [B, H_kv, T, D] -> int32 [B, H, ceil(T/block_size), 1 + local + topk]:
    block ids ascending, -1 padded. ``idx = ssa_select(q, k, block_size=64, topk=16)``
    """
    B, H, _, T, D = check_qkv(q, k, k)
    _check(T, block_size, topk, beam, fanout, local, top_cap, top_beam, bases, trunc, exact, trunc_from, qnorm)
    nqb = -(-T // block_size)
    dt = torch.float32 if q.dtype == torch.float32 else q.dtype
    rot = reference.basis(D, bases, dt, q.device)
    levels = _hierarchy(k.to(dt) @ rot if bases > 1 else k, block_size, fanout, top_cap, dt)
    if bases > 1:  # the leaves score the identity basis only: keep [kmax | kmin] of the first D channels
        levels[0] = torch.cat([levels[0][..., :D], levels[0][..., bases * D:(bases + 1) * D]], -1).contiguous()
    q = q.to(dt) @ rot if bases > 1 else q.to(dt)
    D = q.shape[-1]
    triton_path = use_triton(q)
    if triton_path:
        q = q.contiguous()
    else:
        qt = torch.nn.functional.pad(q, (0, 0, 0, nqb * block_size - T)).view(B, H, nqb, block_size, D)
        row_ok = (torch.arange(nqb * block_size, device=q.device) < T).view(1, 1, nqb, block_size, 1)
    qb = torch.arange(nqb, device=q.device).view(1, 1, nqb, 1)
    cand = torch.arange(levels[-1].shape[2], device=q.device).expand(B, H, nqb, -1)
    for lvl in range(len(levels) - 1, -1, -1):
        cut = reference.level_rule(lvl, D, bases, trunc, trunc_from)[1]
        if triton_path:
            s = _scores_triton(q, levels[lvl], cand.to(torch.int32).contiguous(), block_size, cut, qnorm)
        else:
            s = _scores_torch(qt, row_ok, levels[lvl], cand, cut, qnorm)
        ok = (cand >= 0) & (cand * fanout**lvl <= qb)
        if lvl == 0:
            ok &= (cand != 0) & (cand <= qb - local)
        s = s.masked_fill(~ok, float("-inf"))
        if lvl == 0 and exact:  # second pass: rescore the `exact` best leaves by their exact max q . k
            val, pos = s.topk(min(exact, s.shape[-1]), dim=-1)
            cand = torch.where(val > float("-inf"), cand.gather(-1, pos), -1)
            if triton_path:
                s = _exact_triton(q, k.contiguous(), cand.to(torch.int32).contiguous(), block_size)
            else:
                s = _exact_torch(qt, row_ok, k, cand)
            s = s.masked_fill(cand < 0, float("-inf"))
        width = topk if lvl == 0 else beam if lvl < len(levels) - 1 or top_beam is None else top_beam
        val, pos = s.topk(min(width, s.shape[-1]), dim=-1)
        best = torch.where(val > float("-inf"), cand.gather(-1, pos), -1)
        if lvl > 0:
            child = (best[..., None] * fanout + torch.arange(fanout, device=q.device)).flatten(-2)
            keep = (best >= 0)[..., None].expand(-1, -1, -1, -1, fanout).flatten(-2) & (child < levels[lvl - 1].shape[2])
            cand = torch.where(keep, child, -1)
    content = best
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
                  beam: int = 64, fanout: int = 4, local: int = 2, top_cap: int = 256, top_beam: int | None = 96,
                  bases: int = 2, trunc: float | tuple[float, ...] = reference.TRUNC, exact: int = 0, trunc_from: int = 2,
                  qnorm: bool = reference.QNORM) -> torch.Tensor:
    """Causal attention over the SSA-selected key blocks.

    q: [B, H, T, D]; k, v: [B, H_kv, T, D] -> [B, H, T, D]. ``o = ssa_attention(q, k, v, topk=16)``
    """
    check_qkv(q, k, v)
    _check(q.shape[2], block_size, topk, beam, fanout, local, top_cap, top_beam, bases, trunc, exact, trunc_from,
           qnorm)
    if not use_triton(q):
        return reference.ssa_ref(q, k, v, block_size, topk=topk, beam=beam, fanout=fanout, local=local,
                                 top_cap=top_cap, top_beam=top_beam, bases=bases, trunc=trunc, exact=exact,
                                 trunc_from=trunc_from, qnorm=qnorm)
    idx = ssa_select(q, k, block_size, topk, beam, fanout, local, top_cap, top_beam, bases, trunc, exact, trunc_from,
                     qnorm)
    return block_sparse_attention(q, k, v, idx, block_size)
