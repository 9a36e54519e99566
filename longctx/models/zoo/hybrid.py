"""Hybrid (Jamba-style): Mamba-2 layers with one attention layer in every ``attn_every`` layers
(default 4, i.e. 1 attention : 3 Mamba-2). The attention layer sits in the middle of each group
(layer index ``i % attn_every == attn_every // 2``), so a 4-layer model is Mamba-2, Mamba-2,
attention, Mamba-2.

``attention`` (mixer knob): ``dense`` (default; the ``hybrid`` architecture, quadratic in its one
layer) or ``ssa`` (the ``hybrid_ssa`` architecture: content-routed block attention with its
``block``, ``top_blocks`` and ``window`` knobs, so the whole model is sub-quadratic).
"""
from __future__ import annotations

from torch import nn

from longctx.models.errors import ModelError
from longctx.models.zoo import dense, mamba2, ssa
from longctx.models.zoo.trunk import ZooConfig

ATTENTION = {"dense": dense.make, "ssa": ssa.make}


def is_attention_layer(cfg: ZooConfig, layer: int) -> bool:
    every = int(cfg.mixer.get("attn_every", 4))
    return layer % every == every // 2


def make(cfg: ZooConfig, layer: int) -> nn.Module:
    if not is_attention_layer(cfg, layer):
        return mamba2.make(cfg, layer)
    kind = cfg.mixer.get("attention", "dense")
    if kind not in ATTENTION:
        raise ModelError(f"hybrid: attention {kind!r} is not one of {', '.join(ATTENTION)}")
    return ATTENTION[kind](cfg, layer)
