"""SSA, content-routed sub-quadratic sparse attention (in the manner of MoBA / block routing):
keys are grouped in blocks of ``block`` tokens, each summarized by its mean routing key; each query
scores the completed blocks before its own by ``r_q . mean(r_k over the block)`` and attends to the
tokens of its ``top_blocks`` best blocks plus a causal local window of ``window`` tokens
(``window >= block``, so the query's own, unfinished block is always covered). Routing is per query
and per head and passes no gradient to the language-model loss.

Routing keys and queries, two ways (mixer knob ``router_dim``):
- ``router_dim = 0``: the attention's own q and k. Under partial RoPE only their unrotated dimensions
  route (content alone, at any distance). Keys learn to be routable only through the attention they
  receive; an ssa trained this way plateaued at answer loss 0.64 and found needles about as
  often as 8 random blocks of 15 would.
- ``router_dim > 0``: a router of its own, ``r_q, r_k = W_q x, W_k x`` (``router_dim`` per head, no
  RoPE, input with the gradient stopped), trained only by an auxiliary loss as DSA's indexer is
  (``route_distill``): the KL divergence from the full causal attention's mass on each completed
  block (stop-gradient) to the softmax of the routing scores. Its keys are cached beside k and v.
  (Distilling into the attention's own q and k instead pulled their content half toward the diffuse
  attention of early training: a hybrid_ssa trained so never left chance.)

Attended keys per query: ``top_blocks * block + window``, independent of T; routing costs
O(T / block) per query. Training (and ``select``, the reference) builds a boolean mask and runs
masked SDPA. Inference (prefill and decode alike) never builds a mask: for a chunk of queries it
scores the window band by band and the chosen blocks block-inverted (the chosen (query, block)
pairs are sorted by block, so each block's keys meet all the queries that chose it in one small
matmul), then softmaxes both sets of logits jointly and adds each ``P @ V`` into its queries' rows.
Work is O(T * (top_blocks * block + window) * D) plus the routing; memory O(chunk * (T / block)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from longctx.models.zoo.dense import causal_mask, masked_attention
from longctx.models.zoo.sparse import SelectedAttention
from longctx.models.zoo.trunk import ZooConfig

INFER_CHUNK = 4096  # queries routed and attended at once by the inference path
MAX_TILE = 64       # most (query, block) pairs per small matmul of the block-inverted path

Part = tuple[torch.Tensor, torch.Tensor, torch.Tensor]   # rows [N, R], logits [N, R, n], values [N, n, D]


def tile_size(pairs: int, groups: int) -> int:
    """Queries per tile: the power of two at or above the mean number of pairs per (head, block)
    group, at most ``MAX_TILE``."""
    mean = -(-pairs // max(groups, 1))
    return min(MAX_TILE, 1 << (mean - 1).bit_length())


def view_lanes(counts: torch.Tensor) -> int:
    """Lanes per (head, block) of the view part, given ``counts [groups]`` pairs per (head, block):
    the ``R`` in 0, 1, 2, 4 .. ``MAX_TILE`` that minimizes the view part's lanes (``groups * R``,
    chosen or not) plus twice the pairs left over (a tile lane also gathers its block's keys)."""
    lanes = [0] + [1 << i for i in range(MAX_TILE.bit_length())]
    costs = {R: len(counts) * R + 2 * int((counts - R).clamp(min=0).sum()) for R in lanes}
    return min(costs, key=costs.get)


class ContentRoutedAttention(SelectedAttention):
    def __init__(self, cfg: ZooConfig, layer: int):
        super().__init__(cfg, layer)
        self.block = int(cfg.mixer.get("block", 64))
        self.top_blocks = int(cfg.mixer.get("top_blocks", 8))
        self.window = int(cfg.mixer.get("window", 128))
        # without a router, q and k route from this dimension on: the unrotated ones (all under full RoPE)
        rotated = 2 * round(self.head_dim * self.rope_fraction / 2)
        self.route_from = rotated if rotated < self.head_dim else 0
        self.router_dim = int(cfg.mixer.get("router_dim", 0))
        if self.router_dim:
            self.router_q = nn.Linear(cfg.d_model, self.n_heads * self.router_dim, bias=False)
            self.router_k = nn.Linear(cfg.d_model, self.n_heads * self.router_dim, bias=False)
        self.aux: torch.Tensor | None = None
        if self.window < self.block:
            raise ValueError(f"ssa: window {self.window} must be at least the block size {self.block}")

    def router_heads(self, x: torch.Tensor, proj: nn.Linear) -> torch.Tensor:
        """The router's projection of ``x: [B, T, d]`` (gradient stopped) -> ``[B, H, T, router_dim]``."""
        B, T, _ = x.shape
        return proj(x.detach()).view(B, T, self.n_heads, self.router_dim).transpose(1, 2)

    def extra_keys(self, x, pos):
        return {"route_k": self.router_heads(x, self.router_k)} if self.router_dim else {}

    def route_queries(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """``x: [B, Tq, d]``, ``q: [B, H, Tq, D]`` -> routing queries ``[B, H, Tq, Dr]``."""
        return self.router_heads(x, self.router_q) if self.router_dim else q[..., self.route_from:]

    def route_keys(self, k: torch.Tensor, extra: dict[str, torch.Tensor]) -> torch.Tensor:
        """``k: [B, H, Tk, D]`` and the cached extras -> routing keys ``[B, H, Tk, Dr]``."""
        return extra["route_k"] if self.router_dim else k[..., self.route_from:]

    def block_means(self, rk: torch.Tensor) -> torch.Tensor:
        """Mean routing key of each completed block: ``rk: [B, H, Tk, Dr]`` -> ``[B, H, Tk // block, Dr]``."""
        B, H, Tk, Dr = rk.shape
        nb = Tk // self.block
        return rk[:, :, :nb * self.block].reshape(B, H, nb, self.block, Dr).mean(3)

    def route(self, rq: torch.Tensor, means: torch.Tensor, q_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each query's best completed blocks: ``rq: [B, H, Tq, Dr]``, ``means: [B, H, nb, Dr]`` (nb >= 1)
        -> block indices ``[B, H, Tq, min(top_blocks, nb)]`` and whether each is a real choice
        (a block that is done: it ends before the query's own block starts)."""
        nb = means.shape[2]
        scores = rq @ means.transpose(-1, -2)                                 # [B, H, Tq, nb]
        done = torch.arange(nb, device=rq.device)[None, :] < (q_pos // self.block)[:, None]
        scores = scores.masked_fill(~done, float("-inf"))
        idx = scores.topk(min(self.top_blocks, nb), dim=-1).indices
        return idx, done.expand_as(scores).gather(-1, idx)

    def select(self, x, q, k, q_pos, k_pos, extra):
        return self.routed_mask(self.route_queries(x, q), self.route_keys(k, extra), q_pos, k_pos)

    def routed_mask(self, rq: torch.Tensor, rk: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        """``select`` from routing queries ``rq: [B, H, Tq, Dr]`` and keys ``rk: [B, H, Tk, Dr]``: the
        chosen blocks' tokens and the causal window, bool ``[B, H, Tq, Tk]`` (or ``[1, 1, Tq, Tk]``)."""
        B, H, Tq, _ = rq.shape
        Tk = rk.shape[2]
        diff = q_pos[:, None] - k_pos[None, :]
        local = (diff >= 0) & (diff < self.window)
        nb = Tk // self.block  # the cache is never trimmed, so key positions start at 0
        if nb == 0:
            return local[None, None]
        idx, real = self.route(rq, self.block_means(rk), q_pos)
        chosen = torch.zeros(B, H, Tq, nb, dtype=torch.bool, device=rq.device)
        chosen.scatter_(-1, idx, real)
        tokens = chosen.repeat_interleave(self.block, dim=-1)
        tokens = torch.nn.functional.pad(tokens, (0, Tk - tokens.shape[-1]))
        return tokens | local

    def attend_train(self, x, q, k, v, pos):
        """Selects by token index, like every selected attention; a router also leaves its distillation
        loss, from the same routing queries and keys."""
        idx = torch.arange(q.shape[2], device=q.device)
        rq, rk = self.route_queries(x, q), self.route_keys(k, self.extra_keys(x, idx))
        out = masked_attention(q, k, v, self.routed_mask(rq, rk, idx, idx))
        distill = self.router_dim and self.training and torch.is_grad_enabled()
        self.aux = self.route_distill(rq, rk, q, k) if distill else None
        return out

    def route_distill(self, rq: torch.Tensor, rk: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor | None:
        """KL(full attention's mass per completed block, per head || softmax of the
        routing scores ``rq . mean(rk)`` scaled by ``Dr ** -0.5``), averaged over heads and the queries
        past the first block (those with a completed block). ``q, k: [B, H, T, D]`` and ``rq, rk:
        [B, H, T, Dr]`` at token positions ``0 .. T - 1``; the target is stop-gradient. Every row
        softmaxed has a finite entry: a row of -inf has a NaN gradient, which compiled kernels do not
        mask away (a first version went NaN at its first compiled step on the GPU)."""
        B, H, T, D = q.shape
        nb, bs, Dr = T // self.block, self.block, rq.shape[-1]
        if nb == 0 or T == bs:
            return None
        t = torch.arange(bs, T, device=q.device)                                              # query positions
        done = torch.arange(nb, device=q.device)[None, :] < (t // bs)[:, None]                # [T - bs, nb]
        acc = torch.promote_types(q.dtype, torch.float32)
        with torch.autocast(q.device.type, enabled=False):    # float32 products even under bf16 autocast
            with torch.no_grad():
                logits = (q[:, :, bs:].to(acc) @ k.to(acc).transpose(-1, -2)) * D ** -0.5    # [B, H, T - bs, T]
                p = logits.masked_fill(~causal_mask(t, torch.arange(T, device=q.device)), float("-inf")).softmax(-1)
                mass = p[..., :nb * bs].reshape(B, H, T - bs, nb, bs).sum(-1).masked_fill(~done, 0.0)
                target = mass / mass.sum(-1, keepdim=True).clamp(min=torch.finfo(acc).tiny)
            scores = (rq[:, :, bs:].to(acc) @ self.block_means(rk).to(acc).transpose(-1, -2)) * Dr ** -0.5
            log_q = scores.masked_fill(~done, float("-inf")).log_softmax(-1).masked_fill(~done, 0.0)
            return (torch.xlogy(target, target) - target * log_q).sum(-1).mean()

    def attend_infer(self, x, q, k, v, q_pos, k_pos, extra):
        """``q: [B, H, Tq, D]`` at contiguous positions ``q_pos`` ending at the last key; ``k, v:
        [B, H, Tk, D]`` at positions ``0 .. Tk - 1`` (the cache is never trimmed) -> ``[B, H, Tq, D]``,
        equal to masked attention over ``select``'s keys without ever holding a [Tq, Tk] tensor."""
        k, v = k.contiguous(), v.contiguous()
        means, rq = self.block_means(self.route_keys(k, extra)), self.route_queries(x, q)
        outs = [self.attend_chunk(q[:, :, a:a + INFER_CHUNK], rq[:, :, a:a + INFER_CHUNK], k, v, q_pos[a:a + INFER_CHUNK], means)
                for a in range(0, q.shape[2], INFER_CHUNK)]
        return torch.cat(outs, dim=2)

    def attend_chunk(self, q: torch.Tensor, rq: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor,
                     means: torch.Tensor) -> torch.Tensor:
        """One chunk of ``attend_infer``: ``q: [B, H, C, D]``, its routing queries ``rq: [B, H, C, Dr]``,
        ``means: [B, H, nb, Dr]`` -> ``[B, H, C, D]``.

        Queries are padded to ``G`` bands of ``S`` and numbered by row, ``(b * H + h) * G * S + query``;
        row ``B * H * G * S`` is a sink for padding. Each part is ``(rows [N, R], logits [N, R, n],
        values [N, n, D])``: ``R`` queries (by row) against ``n`` keys; a query's keys are disjoint
        across parts, so one softmax over all parts equals the masked softmax."""
        B, H, C, D = q.shape
        S = min(self.window, C)
        G = -(-C // S)
        n_rows = B * H * G * S
        qs = q * D ** -0.5
        parts = [self.window_part(qs, k, v, int(q_pos[0]), S), *self.block_parts(rq, qs, k, v, q_pos, means, G * S)]
        # softmax statistics and sums in float32 or wider (under autocast, parts come out in bf16 or float32)
        acc = torch.promote_types(q.dtype, torch.float32)
        m = torch.full((n_rows + 1,), float("-inf"), dtype=acc, device=q.device)
        m[n_rows] = 0.0                        # the sink's lanes are all -inf: keep exp() finite there
        for rows, logits, _ in parts:
            m.scatter_reduce_(0, rows.reshape(-1), logits.amax(-1).reshape(-1).to(acc), "amax")
        den = torch.zeros(n_rows + 1, dtype=acc, device=q.device)
        out = torch.zeros(n_rows + 1, D, dtype=acc, device=q.device)
        for rows, logits, values in parts:
            p = logits.to(acc).sub_(m[rows][..., None]).exp_()   # in place unless autocast made it bf16
            den.index_add_(0, rows.reshape(-1), p.sum(-1).reshape(-1))
            out.index_add_(0, rows.reshape(-1), (p @ values.to(acc)).to(acc).reshape(-1, D))   # autocast: bf16 product
        out = out[:n_rows] / den[:n_rows, None]
        return out.view(B, H, G * S, D)[:, :, :C].to(q.dtype)

    def window_part(self, qs: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p0: int, S: int) -> Part:
        """Scaled queries ``qs: [B, H, C, D]`` (positions ``p0 ..``) against their causal window, in
        ``G`` bands of ``S`` queries that share ``L = S + window - 1`` keys: rows ``[B * H * G, S]``,
        logits ``[B * H * G, S, L]`` (-inf outside the window) and values ``[B * H * G, L, D]``."""
        B, H, C, D = qs.shape
        W, L, G = self.window, S + self.window - 1, -(-C // S)
        lo = p0 - W + 1                                       # position of the first band's first key
        pad = (0, 0, max(0, -lo), G * S - C)
        kw = F.pad(k[:, :, max(0, lo):p0 + C], pad).unfold(2, L, S)           # [B, H, G, D, L]
        vw = F.pad(v[:, :, max(0, lo):p0 + C], pad).unfold(2, L, S).transpose(-1, -2)
        logits = F.pad(qs, (0, 0, 0, G * S - C)).reshape(B, H, G, S, D) @ kw
        j = torch.arange(S, device=qs.device)[:, None]
        i = torch.arange(L, device=qs.device)[None, :]
        key_pos = lo + S * torch.arange(G, device=qs.device)[:, None] + i     # [G, L]
        keep = ((i >= j) & (i < j + W))[None] & (key_pos >= 0)[:, None, :]    # query p0 + g*S + j, key key_pos
        rows = torch.arange(B * H * G * S, device=qs.device).view(-1, S)
        return rows, logits.masked_fill_(~keep, float("-inf")).view(-1, S, L), vw.reshape(-1, L, D)

    def block_parts(self, rq: torch.Tensor, qs: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    q_pos: torch.Tensor, means: torch.Tensor, stride: int) -> list[Part]:
        """Each query against the keys of its chosen blocks, block-inverted. ``rq: [B, H, C, Dr]`` routes,
        ``qs: [B, H, C, D]`` (scaled) scores; rows are ``(b * H + h) * stride + query``. The (query,
        block) pairs are sorted by block; the first ``R`` pairs (``view_lanes``) of every (head, block) form one part
        whose keys and values are views of the cache, the others go to tiles of one block each with
        that block's keys and values gathered. Logits of keys the window already covers are -inf, so
        no key counts twice; blocks entirely inside the window are dropped before any matmul."""
        B, H, C, D = qs.shape
        bs, sink, BH = self.block, B * H * stride, B * H
        nb = means.shape[2]
        if nb == 0:
            return []
        idx, real = self.route(rq, means, q_pos)                               # [B, H, C, top]
        real &= q_pos[:, None] - idx * bs >= self.window                     # block not inside the window
        pick = real.reshape(-1).nonzero().squeeze(1)
        row = pick // idx.shape[-1]                            # (b * H + h) * C + query
        bh = row // C
        group, order = (bh * nb + idx.reshape(-1)[pick]).sort()                # (b * H + h) * nb + block
        row = bh[order] * stride + row[order] % C
        counts = torch.bincount(group, minlength=BH * nb)
        rank = torch.arange(len(group), device=qs.device) - (counts.cumsum(0) - counts)[group]
        qrows = F.pad(F.pad(qs.reshape(BH, C, D), (0, 0, 0, stride - C)).reshape(sink, D), (0, 0, 0, 1))
        # key j of block b is inside row r's window when j > last[r] - b * block
        last = F.pad(F.pad(q_pos - self.window, (0, stride - C), value=-bs).repeat(BH), (0, 1), value=-bs)
        k3, v3 = k.view(BH, -1, D), v.view(BH, -1, D)

        def part(rows: torch.Tensor, groups: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> Part:
            logits = qrows[rows] @ keys.transpose(1, 2)
            drop = torch.arange(bs, device=qs.device) > (last[rows] - (groups % nb * bs)[:, None])[..., None]
            return rows, logits.masked_fill_(drop, float("-inf")), values

        R = view_lanes(counts)
        first = rank < R
        parts = []
        if R:   # a view of the keys when the cache is whole blocks (every prefill piece but the last)
            lanes = torch.full((BH * nb * R,), sink, dtype=torch.long, device=qs.device)
            lanes[group[first] * R + rank[first]] = row[first]
            whole = (BH * nb, bs, D)
            parts.append(part(lanes.view(-1, R), torch.arange(BH * nb, device=qs.device),
                              k3[:, :nb * bs].reshape(whole), v3[:, :nb * bs].reshape(whole)))
        if not first.all():
            group, rank, row = group[~first], rank[~first] - R, row[~first]
            groups, counts = group.unique_consecutive(return_counts=True)
            Rt = tile_size(len(group), len(groups))
            tiles = (counts + Rt - 1) // Rt
            gid = torch.repeat_interleave(torch.arange(len(groups), device=qs.device), counts)
            slot = ((tiles.cumsum(0) - tiles)[gid] + rank // Rt) * Rt + rank % Rt
            rows = torch.full((int(tiles.sum()) * Rt,), sink, dtype=torch.long, device=qs.device)
            rows[slot] = row
            tile_group = torch.repeat_interleave(groups, tiles)
            at = (tile_group // nb)[:, None], (tile_group % nb * bs)[:, None] + torch.arange(bs, device=qs.device)
            parts.append(part(rows.view(-1, Rt), tile_group, k3[at], v3[at]))
        return parts


def make(cfg: ZooConfig, layer: int) -> ContentRoutedAttention:
    return ContentRoutedAttention(cfg, layer)
