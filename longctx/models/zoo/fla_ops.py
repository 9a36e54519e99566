"""flash-linear-attention's fused training ops, when the ``fla`` extra is installed and can train here.

fla 0.6 refuses the backward of its gated chunk ops on Hopper GPUs under Triton >= 3.4 and < 3.7.1
(wrong gradients, fla issue #640): it raises inside ``backward``. Such a device gets ``None`` before
training starts, and the zoo's gated mixers train through their chunked PyTorch forms instead.
"""
from __future__ import annotations

from importlib import import_module
from typing import Callable


def gated_backward_is_broken() -> bool:
    """True where fla itself says its gated chunk backward gives wrong results (and refuses to run)."""
    flags = import_module("fla.ops.common.chunk_o")
    return bool(getattr(flags, "IS_NVIDIA_HOPPER", False) and getattr(flags, "TRITON_ABOVE_3_4_0", False)
                and not getattr(flags, "TRITON_ABOVE_3_7_1", True))


def fla_op(module: str, name: str) -> Callable | None:
    """``fla.ops.<module>.<name>``, or None without fla or where its gated backward cannot run."""
    try:
        op = getattr(import_module(f"fla.ops.{module}"), name)
        broken = gated_backward_is_broken()
    except ImportError:
        return None
    return None if broken else op
