"""Benchmark cases of the Mamba-1 selective-scan family, collected by ``evals bench``.

``CASES[name](n, device, dtype, B, H, H_kv, D)`` returns ``(fn, flops)``: ``selective_scan`` runs one
prefill over ``H · D`` channels (1024 at the suite's B=1, H=8, D=128), state size ``N = 16``, one B/C group,
with the D skip and the SiLU(z) gate, fresh random inputs (dt = softplus(randn - 3), A = -(1..16)).
FLOPs are those of the recurrence, 7 per (channel, token, state entry): dt·A, exp, a·h, + dt·x·B (two),
C·h and its sum; the chunked kernel's prefix scan does about twice that arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from longctx.kernels.scan.ops import selective_scan

N_STATE = 16
FLOPS_PER_ENTRY = 7


def inputs(n: int, device, dtype, B: int, channels: int, N: int = N_STATE) -> dict:
    """Random prefill inputs in the family's layout (x, B, C, z in ``dtype``; dt, A, D float32)."""
    return {
        "x": torch.randn(B, channels, n, device=device, dtype=dtype),
        "dt": F.softplus(torch.randn(B, channels, n, device=device) - 3.0),
        "A": -torch.arange(1, N + 1, device=device, dtype=torch.float32).repeat(channels, 1),
        "B": torch.randn(B, 1, N, n, device=device, dtype=dtype),
        "C": torch.randn(B, 1, N, n, device=device, dtype=dtype),
        "D": torch.ones(channels, device=device),
        "z": torch.randn(B, channels, n, device=device, dtype=dtype),
    }


def _scan(n, device, dtype, B, H, H_kv, D):
    a = inputs(n, device, dtype, B, H * D)

    def fn():
        return selective_scan(a["x"], a["dt"], a["A"], a["B"], a["C"], a["D"], a["z"])
    return fn, float(FLOPS_PER_ENTRY * B * H * D * n * N_STATE)


CASES: dict[str, Callable] = {"selective_scan": _scan}
