"""Hybrid (Jamba-style): Mamba-2 layers with one dense attention layer in every ``attn_every``
layers (default 4, i.e. 1 attention : 3 Mamba-2). The attention layer sits in the middle of each
group (layer index ``i % attn_every == attn_every // 2``), so a 4-layer model is
Mamba-2, Mamba-2, dense, Mamba-2.
"""
from __future__ import annotations

from torch import nn

from models.zoo import dense, mamba2
from models.zoo.trunk import ZooConfig


def is_attention_layer(cfg: ZooConfig, layer: int) -> bool:
    every = int(cfg.mixer.get("attn_every", 4))
    return layer % every == every // 2


def make(cfg: ZooConfig, layer: int) -> nn.Module:
    return dense.make(cfg, layer) if is_attention_layer(cfg, layer) else mamba2.make(cfg, layer)
