"""SSA, content-routed sub-quadratic sparse attention (in the manner of MoBA / block routing):
keys are grouped in blocks of ``block`` tokens, each summarized by its mean key; each query
scores the completed blocks before its own by ``q . mean(k_block)`` and attends to the tokens of
its ``top_blocks`` best blocks plus a causal local window of ``window`` tokens (``window >= block``,
so the query's own, unfinished block is always covered). Routing is per query and per head and
passes no gradient; keys learn to be routable through the attention they receive.

Attended keys per query: ``top_blocks * block + window``, independent of T; routing costs
O(T / block) per query. Training (and ``select``, the reference) builds a boolean mask and runs
masked SDPA. Inference (prefill and decode alike) never builds a mask: for a chunk of queries it
computes the window logits band by band, and the chosen-block logits block-inverted: the chosen
(query, block) pairs are sorted by block and packed into tiles of ``TILE`` queries that share one
key block, so each tile is one small matmul against that block's keys. Both sets of logits are
softmaxed jointly, and each tile's ``P @ V`` is added into its queries' rows. Work is
O(T * (top_blocks * block + window) * D) plus the routing, memory O(chunk * (top_blocks + window)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from models.zoo.sparse import SelectedAttention
from models.zoo.trunk import ZooConfig

INFER_CHUNK = 4096  # queries routed and attended at once by the inference path
TILE = 32           # (query, block) pairs per small matmul of the block-inverted path


class ContentRoutedAttention(SelectedAttention):
    def __init__(self, cfg: ZooConfig, layer: int):
        super().__init__(cfg, layer)
        self.block = int(cfg.mixer.get("block", 64))
        self.top_blocks = int(cfg.mixer.get("top_blocks", 8))
        self.window = int(cfg.mixer.get("window", 128))
        if self.window < self.block:
            raise ValueError(f"ssa: window {self.window} must be at least the block size {self.block}")

    def block_means(self, k: torch.Tensor) -> torch.Tensor:
        """Mean key of each completed block: ``k: [B, H, Tk, D]`` -> ``[B, H, Tk // block, D]``."""
        B, H, Tk, D = k.shape
        nb = Tk // self.block
        return k[:, :, :nb * self.block].reshape(B, H, nb, self.block, D).mean(3)

    def route(self, q: torch.Tensor, means: torch.Tensor, q_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each query's best completed blocks: ``q: [B, H, Tq, D]``, ``means: [B, H, nb, D]`` (nb >= 1)
        -> block indices ``[B, H, Tq, min(top_blocks, nb)]`` and whether each is a real choice
        (a block that is done: it ends before the query's own block starts)."""
        nb = means.shape[2]
        scores = q @ means.transpose(-1, -2)                                  # [B, H, Tq, nb]
        done = torch.arange(nb, device=q.device)[None, :] < (q_pos // self.block)[:, None]
        scores = scores.masked_fill(~done, float("-inf"))
        idx = scores.topk(min(self.top_blocks, nb), dim=-1).indices
        return idx, done.expand_as(scores).gather(-1, idx)

    def select(self, x, q, k, q_pos, k_pos, extra):
        B, H, Tk, D = k.shape
        diff = q_pos[:, None] - k_pos[None, :]
        local = (diff >= 0) & (diff < self.window)
        nb = Tk // self.block  # the cache is never trimmed, so key positions start at 0
        if nb == 0:
            return local[None, None]
        idx, real = self.route(q, self.block_means(k), q_pos)
        chosen = torch.zeros(B, H, q.shape[2], nb, dtype=torch.bool, device=q.device)
        chosen.scatter_(-1, idx, real)
        tokens = chosen.repeat_interleave(self.block, dim=-1)
        tokens = torch.nn.functional.pad(tokens, (0, Tk - tokens.shape[-1]))
        return tokens | local

    def attend_infer(self, x, q, k, v, q_pos, k_pos, extra):
        """``q: [B, H, Tq, D]`` at contiguous positions ``q_pos`` ending at the last key; ``k, v:
        [B, H, Tk, D]`` at positions ``0 .. Tk - 1`` (the cache is never trimmed) -> ``[B, H, Tq, D]``,
        equal to masked attention over ``select``'s keys without ever holding a [Tq, Tk] tensor."""
        means = self.block_means(k)
        outs = [self.attend_chunk(q[:, :, a:a + INFER_CHUNK], k, v, q_pos[a:a + INFER_CHUNK], means)
                for a in range(0, q.shape[2], INFER_CHUNK)]
        return torch.cat(outs, dim=2)

    def attend_chunk(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor,
                     means: torch.Tensor) -> torch.Tensor:
        """One chunk of ``attend_infer``: ``q: [B, H, C, D]``, ``means: [B, H, nb, D]`` -> ``[B, H, C, D]``.
        Queries are padded to ``G`` bands of ``S``; rows below are ``(b * H + h) * G * S + query``."""
        B, H, C, D = q.shape
        S = min(self.window, C)
        G = -(-C // S)
        win_logits, win_v = self.window_logits(q, k, v, int(q_pos[0]), S)     # [B, H, G, S, L], [B, H, G, L, D]
        rows, tile_logits, tile_v = self.block_logits(q, k, v, q_pos, means, G * S)
        n_rows = B * H * G * S
        # joint softmax over the window band and the chosen blocks; row n_rows is a sink for padding
        m = torch.zeros(n_rows + 1, dtype=q.dtype, device=q.device)
        m[:n_rows] = win_logits.amax(-1).reshape(-1)
        m.scatter_reduce_(0, rows.reshape(-1), tile_logits.amax(-1).reshape(-1), "amax")
        win_p = (win_logits - m[:n_rows].view(B, H, G, S, 1)).exp()
        tile_p = (tile_logits - m[rows][..., None]).exp()                    # [n_tiles, TILE, block]
        den = F.pad(win_p.sum(-1).reshape(-1), (0, 1))
        den.index_add_(0, rows.reshape(-1), tile_p.sum(-1).reshape(-1))
        out = F.pad((win_p @ win_v).reshape(n_rows, D), (0, 0, 0, 1))
        out.index_add_(0, rows.reshape(-1), (tile_p @ tile_v).reshape(-1, D))
        out = out[:n_rows] / den[:n_rows, None]
        return out.view(B, H, G * S, D)[:, :, :C]

    def window_logits(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p0: int,
                      S: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled logits of queries ``q: [B, H, C, D]`` (positions ``p0 ..``) against their causal window,
        in bands of ``S`` queries that share ``L = S + window - 1`` keys: ``[B, H, G, S, L]`` with
        -inf outside the window, and the band's values ``[B, H, G, L, D]``."""
        B, H, C, D = q.shape
        W, L, G = self.window, S + self.window - 1, -(-C // S)
        lo = p0 - W + 1                                       # position of the first band's first key
        pad = (0, 0, max(0, -lo), G * S - C)
        kw = F.pad(k[:, :, max(0, lo):p0 + C], pad).unfold(2, L, S)           # [B, H, G, D, L]
        vw = F.pad(v[:, :, max(0, lo):p0 + C], pad).unfold(2, L, S).transpose(-1, -2)
        logits = F.pad(q, (0, 0, 0, G * S - C)).reshape(B, H, G, S, D) @ kw * D ** -0.5
        j = torch.arange(S, device=q.device)[:, None]
        i = torch.arange(L, device=q.device)[None, :]
        key_pos = lo + S * torch.arange(G, device=q.device)[:, None] + i      # [G, L]
        keep = ((i >= j) & (i < j + W))[None] & (key_pos >= 0)[:, None, :]    # query p0 + g*S + j, key key_pos
        return logits.masked_fill_(~keep, float("-inf")), vw

    def block_logits(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor,
                     means: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits of each query against the keys of its chosen blocks, packed block-inverted:
        ``rows [n_tiles, TILE]`` (the query's row, ``(b * H + h) * stride + query``; padding lanes
        point at the sink row ``B * H * stride``), scaled logits ``[n_tiles, TILE, block]`` (-inf for
        padding and for keys the window already covers, so no key counts twice) and values
        ``[n_tiles, block, D]``. Blocks entirely inside the window are dropped before any matmul."""
        B, H, C, D = q.shape
        bs, sink = self.block, B * H * stride
        nb = min(means.shape[2], int(q_pos[-1]) // bs)        # blocks some query of the chunk may choose
        if nb == 0:
            empty = q.new_empty(0, TILE, bs)
            return torch.empty(0, TILE, dtype=torch.long, device=q.device), empty, q.new_empty(0, bs, D)
        idx, real = self.route(q, means[:, :, :nb], q_pos)                    # [B, H, C, top]
        real &= q_pos[:, None] - idx * bs >= self.window                     # block not inside the window
        pick = real.reshape(-1).nonzero().squeeze(1)
        top = idx.shape[-1]
        row = pick // top                                      # (b * H + h) * C + query
        bh = row // C
        group, order = (bh * nb + idx.reshape(-1)[pick]).sort()
        row = bh[order] * stride + row[order] % C
        groups, counts = group.unique_consecutive(return_counts=True)
        tiles = (counts + TILE - 1) // TILE
        gid = torch.repeat_interleave(torch.arange(len(groups), device=q.device), counts)
        rank = torch.arange(len(group), device=q.device) - (counts.cumsum(0) - counts)[gid]
        slot = ((tiles.cumsum(0) - tiles)[gid] + rank // TILE) * TILE + rank % TILE
        rows = torch.full((int(tiles.sum()) * TILE,), sink, dtype=torch.long, device=q.device)
        rows[slot] = row
        rows = rows.view(-1, TILE)
        tile_group = torch.repeat_interleave(groups, tiles)   # (b * H + h) * nb + block, per tile
        Tk = k.shape[2]
        kb = k.reshape(B * H, Tk, D)[:, :means.shape[2] * bs].reshape(B * H, -1, bs, D)
        vb = v.reshape(B * H, Tk, D)[:, :means.shape[2] * bs].reshape(B * H, -1, bs, D)
        tile_k = kb[tile_group // nb, tile_group % nb]                        # [n_tiles, block, D]
        tile_v = vb[tile_group // nb, tile_group % nb]
        qf = F.pad(q.reshape(B * H, C, D), (0, 0, 0, stride - C)).reshape(sink, D)
        logits = F.pad(qf, (0, 0, 0, 1))[rows] @ tile_k.transpose(1, 2) * D ** -0.5
        pos = F.pad(q_pos, (0, stride - C)).repeat(B * H)
        q_at = F.pad(pos, (0, 1))[rows]                                        # [n_tiles, TILE]
        key_at = (tile_group % nb * bs)[:, None] + torch.arange(bs, device=q.device)
        drop = (q_at[:, :, None] - key_at[:, None, :] < self.window) | (rows == sink)[..., None]
        return rows, logits.masked_fill_(drop, float("-inf")), tile_v


def make(cfg: ZooConfig, layer: int) -> ContentRoutedAttention:
    return ContentRoutedAttention(cfg, layer)
