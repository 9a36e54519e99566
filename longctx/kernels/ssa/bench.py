"""Benchmark cases for SSA, collected by ``evals bench``: the whole op, and the selection alone.

Settings: blocks of 64 tokens, fanout 4, top_cap 256, top_beam 96, beam 64, top-k 16 content blocks
(fewer at tiny n), a local
window of 2 blocks and the first block: at most 19 * 64 = 1216 keys per query. A node score is a
4D-wide dot product per query above the leaves (the positive and negative parts of q, in the
selector's two bases, against the centred bounds) and 2D-wide at the leaves.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from longctx.kernels.flash import block_sparse_attention
from longctx.kernels.ssa import ssa_select

BS, FANOUT, BEAM, TOP_CAP, TOP_BEAM, LOCAL, BASES, TRUNC = 64, 4, 64, 256, 96, 2, 2, 1.5
KW = {"top_cap": TOP_CAP, "top_beam": TOP_BEAM, "bases": BASES, "trunc": TRUNC}


def _topk(n: int) -> int:
    return max(1, min(16, n // BS // 4))


def _select_flops(n, B, H, D):
    nkb = -(-n // BS)
    levels, count = 1, nkb
    while count > TOP_CAP:
        count, levels = -(-count // FANOUT), levels + 1
    cands, kept = [count], min(count, TOP_BEAM)  # candidates per level, top first
    for _ in range(levels - 1):
        cands.append(kept * FANOUT)
        kept = min(BEAM, kept * FANOUT)
    width = BASES * sum(cands[:-1]) + cands[-1]  # the leaves score the identity basis only
    return 2.0 * B * H * nkb * BS * 2 * D * width


def ssa(n, device, dtype, B, H, H_kv, D):
    q, k, v = (torch.randn(B, h, n, D, device=device, dtype=dtype) for h in (H, H_kv, H_kv))
    topk = _topk(n)
    blocks = int((ssa_select(q, k, BS, topk, BEAM, FANOUT, LOCAL, **KW) >= 0).sum())

    def run():
        return block_sparse_attention(q, k, v, ssa_select(q, k, BS, topk, BEAM, FANOUT, LOCAL, **KW), BS)

    return run, _select_flops(n, B, H, D) + 4.0 * D * BS * BS * blocks


def select(n, device, dtype, B, H, H_kv, D):
    q, k = (torch.randn(B, h, n, D, device=device, dtype=dtype) for h in (H, H_kv))
    topk = _topk(n)
    return (lambda: ssa_select(q, k, BS, topk, BEAM, FANOUT, LOCAL, **KW)), _select_flops(n, B, H, D)


CASES: dict[str, Callable] = {"ssa": ssa, "ssa_select": select}
