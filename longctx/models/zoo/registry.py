"""Every zoo architecture by name: its mixer factory, its own knobs, and its width per size.

Widths are chosen per architecture so that, at each size, every model has the same parameter
count within +-10% of the dense one (``tests/test_zoo.py`` checks it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from longctx.models.errors import ModelError
from longctx.models.zoo import dense, dsa, hybrid, hyena, hyper, linear, mamba1, mamba2, performer, s4, ssa, swa
from longctx.models.zoo.trunk import MixerFactory, Trunk, ZooConfig


@dataclass(frozen=True)
class Size:
    n_layers: int
    n_heads: int
    mlp_ratio: float


SIZES: dict[str, Size] = {
    "tiny": Size(n_layers=2, n_heads=2, mlp_ratio=8 / 3),     # tests on the CPU
    "small": Size(n_layers=4, n_heads=4, mlp_ratio=8 / 3),    # the shipped checkpoints
}

MIXERS: dict[str, MixerFactory] = {
    "dense": dense.make,
    "swa": swa.make,
    "linear": linear.make,
    "mamba2": mamba2.make,
    "hybrid": hybrid.make,
    "hybrid_ssa": hybrid.make,
    "dsa": dsa.make,
    "ssa": ssa.make,
    "hyper": hyper.make,
    "mamba1": mamba1.make,
    "performer": performer.make,
    "s4": s4.make,
    "hyena": hyena.make,
}

# architecture -> its mixer knobs at each size
KNOBS: dict[str, dict[str, dict[str, Any]]] = {
    "dense": {"tiny": {}, "small": {}},
    "swa": {"tiny": {"window": 8}, "small": {"window": 256}},
    "linear": {"tiny": {"chunk": 8, "conv": 4}, "small": {"chunk": 128, "conv": 4}},
    "mamba2": {"tiny": {"d_state": 8, "head_dim": 16, "chunk": 8}, "small": {"d_state": 64, "head_dim": 32, "chunk": 128}},
    "hybrid": {"tiny": {"d_state": 8, "head_dim": 16, "chunk": 8, "attn_every": 2},
               "small": {"d_state": 64, "head_dim": 32, "chunk": 128, "attn_every": 4}},
    "hybrid_ssa": {"tiny": {"d_state": 8, "head_dim": 16, "chunk": 8, "attn_every": 2, "attention": "ssa",
                            "block": 4, "top_blocks": 2, "window": 6, "router_dim": 2},
                   "small": {"d_state": 64, "head_dim": 32, "chunk": 128, "attn_every": 4, "attention": "ssa",
                             "block": 64, "top_blocks": 8, "window": 128, "router_dim": 16}},
    "dsa": {"tiny": {"topk": 5, "index_heads": 2, "index_dim": 8}, "small": {"topk": 128, "index_heads": 4, "index_dim": 32}},
    "ssa": {"tiny": {"block": 4, "top_blocks": 2, "window": 6, "router_dim": 8},
            "small": {"block": 64, "top_blocks": 8, "window": 128, "router_dim": 16}},
    "hyper": {"tiny": {"hash_bits": 2, "window": 6}, "small": {"hash_bits": 3, "window": 128}},
    "mamba1": {"tiny": {"d_state": 8}, "small": {"d_state": 16}},
    "performer": {"tiny": {"features": 32, "chunk": 8}, "small": {"features": 256, "chunk": 64}},
    "s4": {"tiny": {"d_state": 4}, "small": {"d_state": 32}},
    "hyena": {"tiny": {"filter_width": 16, "bands": 4, "filter_scale": 32},
              "small": {"filter_width": 64, "bands": 8, "filter_scale": 1024}},
}

# the rotary architectures rotate half of each head's dimensions; the other half match content at any
# distance (with the length phase's PoSE skips and log-n, the 1K-trained dense finds single needles at 64K)
ROTARY = ("dense", "swa", "hybrid", "hybrid_ssa", "dsa", "ssa", "hyper", "performer")
ROPE_FRACTION = 0.5
# the mixers whose softmax spans every earlier key scale their queries by log-n beyond the training length
# (dense.Attention.scale_queries); the others attend to a bounded set of keys, which long prompts do not dilute
LOGN = ("dense", "hybrid", "hyper")
LOGN_LEN = {"tiny": 16, "small": 1024}   # the training length of each size's recipe

# architecture -> d_model at each size (matched parameter counts)
WIDTHS: dict[str, dict[str, int]] = {
    "dense": {"tiny": 64, "small": 256},
    "swa": {"tiny": 64, "small": 256},
    "linear": {"tiny": 64, "small": 248},
    "mamba2": {"tiny": 56, "small": 224},
    "hybrid": {"tiny": 64, "small": 240},
    "hybrid_ssa": {"tiny": 64, "small": 240},
    "dsa": {"tiny": 64, "small": 248},
    "ssa": {"tiny": 64, "small": 256},
    "hyper": {"tiny": 64, "small": 256},
    "mamba1": {"tiny": 56, "small": 232},
    "performer": {"tiny": 64, "small": 256},
    "s4": {"tiny": 68, "small": 272},
    "hyena": {"tiny": 62, "small": 248},
}

ARCHS = tuple(MIXERS)


def config(arch: str, size: str = "small") -> ZooConfig:
    if arch not in MIXERS:
        raise ModelError(f"unknown zoo architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if size not in SIZES:
        raise ModelError(f"unknown zoo size {size!r}; choose one of {', '.join(SIZES)}")
    s, d = SIZES[size], WIDTHS[arch][size]
    hidden = round(d * s.mlp_ratio / 8) * 8
    mixer = {**KNOBS[arch][size], **({"rope_fraction": ROPE_FRACTION} if arch in ROTARY else {}),
             **({"logn_len": LOGN_LEN[size]} if arch in LOGN else {})}
    return ZooConfig(arch=arch, d_model=d, n_layers=s.n_layers, n_heads=s.n_heads, mlp_hidden=hidden, mixer=mixer)


def build(cfg: ZooConfig) -> Trunk:
    if cfg.arch not in MIXERS:
        raise ModelError(f"unknown zoo architecture {cfg.arch!r}; choose one of {', '.join(ARCHS)}")
    return Trunk(cfg, MIXERS[cfg.arch])
