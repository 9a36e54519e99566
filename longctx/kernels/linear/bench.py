"""Benchmark cases of the linear-attention family, collected by ``evals bench``.

``CASES[name](n, device, dtype, B, H, H_kv, D)`` builds fresh random inputs (q ``[B, H, n, D]``, k and v
``[B, H_kv, n, D]``, keys L2-normalised, GLA-style gates) and returns ``(fn, flops)``: a zero-argument
callable running one chunked prefill, and the FLOPs of the chunked form (chunk C = 64), per head:
``4 n D_k D_v`` (state update and inter-chunk output) ``+ 2 n C (D_k + D_v)`` (intra-chunk products),
plus for the delta rule ``2 n D_k D_v + 2 n C (2 D_k + D_v) + n C²`` (``W S``, ``K Kᵀ``, ``W``, ``U`` and
the triangular solve). ``fla_*`` cases run the flash-linear-attention package's chunk kernels on the
same recurrences (layout ``[B, n, H, D]``), only where that package is installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch
import torch.nn.functional as F

from longctx.kernels.linear.ops import gated_delta_rule, gated_linear_attention, linear_attention

CHUNK = 64
Case = Callable[[int, torch.device, torch.dtype, int, int, int, int], tuple[Callable[[], object], float]]


def chunk_flops(n: int, B: int, H: int, Dk: int, Dv: int, delta: bool) -> float:
    """FLOPs of one chunked prefill (see the module docstring)."""
    f = 4 * n * Dk * Dv + 2 * n * CHUNK * (Dk + Dv)
    if delta:
        f += 2 * n * Dk * Dv + 2 * n * CHUNK * (2 * Dk + Dv) + n * CHUNK * CHUNK
    return float(B * H * f)


def inputs(n: int, device, dtype, B: int, H: int, H_kv: int, D: int, gate: str | None, delta: bool) -> dict:
    """Random inputs in the project layout; gates in log space, float32."""
    q = torch.randn(B, H, n, D, device=device, dtype=dtype)
    k = F.normalize(torch.randn(B, H_kv, n, D, device=device, dtype=torch.float32), dim=-1).to(dtype)
    v = torch.randn(B, H_kv, n, D, device=device, dtype=dtype)
    out = {"q": q, "k": k, "v": v, "g": None, "beta": None}
    if gate == "scalar":
        out["g"] = F.logsigmoid(torch.randn(B, H, n, device=device) + 4.0)
    elif gate == "channel":
        out["g"] = F.logsigmoid(torch.randn(B, H, n, D, device=device) + 4.0) / 4
    if delta:
        out["beta"] = torch.rand(B, H, n, device=device, dtype=dtype)
    return out


def _ours(gate: str | None, delta: bool) -> Case:
    def case(n, device, dtype, B, H, H_kv, D):
        x = inputs(n, device, dtype, B, H, H_kv, D, gate, delta)
        if delta:
            def fn():
                return gated_delta_rule(x["q"], x["k"], x["v"], x["g"], x["beta"], chunk_size=CHUNK)
        elif gate:
            def fn():
                return gated_linear_attention(x["q"], x["k"], x["v"], x["g"], chunk_size=CHUNK)
        else:
            def fn():
                return linear_attention(x["q"], x["k"], x["v"], chunk_size=CHUNK)
        return fn, chunk_flops(n, B, H, D, D, delta)
    return case


def _fla(gate: str | None, delta: bool) -> Case:
    def case(n, device, dtype, B, H, H_kv, D):
        x = inputs(n, device, dtype, B, H, H, D, gate, delta)
        t = {name: None if a is None else a.transpose(1, 2).contiguous() for name, a in x.items()}
        if delta and gate == "scalar":
            from fla.ops.gated_delta_rule import chunk_gated_delta_rule as op
            args = (t["q"], t["k"], t["v"], t["g"], t["beta"])
        elif delta:
            from fla.ops.kda import chunk_kda as op
            args = (t["q"], t["k"], t["v"], t["g"], t["beta"])
        elif gate == "channel":
            from fla.ops.gla import chunk_gla as op
            args = (t["q"], t["k"], t["v"], t["g"])
        else:
            from fla.ops.simple_gla import chunk_simple_gla as op
            args = (t["q"], t["k"], t["v"], t["g"])

        def fn():
            with torch.inference_mode():
                return op(*args)
        return fn, chunk_flops(n, B, H, D, D, delta)
    return case


CASES: dict[str, Case] = {
    "linear_attn": _ours(None, False),
    "gla_scalar": _ours("scalar", False),
    "gla_channel": _ours("channel", False),
    "gated_delta": _ours("scalar", True),
    "kda": _ours("channel", True),
}
if importlib.util.find_spec("fla") is not None:
    CASES.update({
        "fla_simple_gla": _fla("scalar", False),
        "fla_gla": _fla("channel", False),
        "fla_gated_delta": _fla("scalar", True),
        "fla_kda": _fla("channel", True),
    })
