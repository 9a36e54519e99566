"""The trunk every zoo architecture shares: byte embedding, pre-norm blocks (mixer + SwiGLU MLP),
final RMSNorm and a tied output head. Only the sequence mixer differs between architectures.

Vocabulary: ids 0-255 are UTF-8 bytes, then ``BOS``, ``EOS`` and ``PAD``.
Each mixer has two paths: ``forward(x)`` (training, autograd) and ``step(x, state)`` (inference:
a prefill with ``state=None`` or a continuation carrying the key/value cache or recurrent state).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

BOS, EOS, PAD = 256, 257, 258
VOCAB_SIZE = 264  # 256 bytes + specials, rounded up to a multiple of 8


def causal_conv(conv: nn.Conv1d, x: torch.Tensor, prev: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal ``conv`` (width K, no padding of its own) of ``x [B, C, T]`` continuing from ``prev [B, C, K - 1]``,
    the inputs before ``x`` (zeros when None). Returns (``[B, C_out, T]``, the last K - 1 inputs for the next call)."""
    k = conv.kernel_size[0]
    prev = x.new_zeros(*x.shape[:2], k - 1) if prev is None else prev.to(x.dtype)
    full = torch.cat([prev, x], dim=-1)
    return conv(full), full[..., full.shape[-1] - (k - 1):]


@dataclass(frozen=True)
class ZooConfig:
    """Everything that defines a zoo model's shape. ``mixer`` holds the architecture's own knobs
    (window, top-k, block size, ...) so the trunk stays the same for all."""

    arch: str
    d_model: int
    n_layers: int
    n_heads: int
    mlp_hidden: int
    vocab_size: int = VOCAB_SIZE
    mixer: dict[str, Any] = field(default_factory=dict)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ZooConfig, mixer: nn.Module):
        super().__init__()
        self.norm1, self.mixer = RMSNorm(cfg.d_model), mixer
        self.norm2, self.mlp = RMSNorm(cfg.d_model), SwiGLU(cfg.d_model, cfg.mlp_hidden)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        x = x + (self.mixer(h, pos) if pos is not None and getattr(self.mixer, "rotary", False) else self.mixer(h))
        return x + self.mlp(self.norm2(x))

    def step(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        h, state = self.mixer.step(self.norm1(x), state)
        x = x + h
        return x + self.mlp(self.norm2(x)), state


MixerFactory = Callable[[ZooConfig, int], nn.Module]


class Trunk(nn.Module):
    """``forward(ids [B, T], pos [T] | None) -> logits [B, T, V]``; ``step(ids, states) -> (logits, states)``.

    ``pos``: increasing RoPE positions for the rotary mixers (training's position skips; default
    ``0..T-1``); recurrent mixers have no positions and ignore it."""

    def __init__(self, cfg: ZooConfig, make_mixer: MixerFactory):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, make_mixer(cfg, i)) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model)
        self.apply(_init)

    def forward(self, ids: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x, pos)
        return self.norm(x) @ self.embed.weight.T

    def step(self, ids: torch.Tensor, states: list[Any] | None = None) -> tuple[torch.Tensor, list[Any]]:
        """Inference path: ``states=None`` prefills; pass the returned states to continue."""
        states = states if states is not None else [None] * len(self.blocks)
        x, out = self.embed(ids), []
        for block, state in zip(self.blocks, states):
            x, state = block.step(x, state)
            out.append(state)
        return self.norm(x) @ self.embed.weight.T, out

    def aux_loss(self) -> torch.Tensor | None:
        """Auxiliary losses the last ``forward`` left on mixers (e.g. DSA's indexer distillation)."""
        losses = [m.aux for m in self.modules() if getattr(m, "aux", None) is not None]
        return torch.stack(losses).sum() if losses else None

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, std=0.02)
