"""Benchmark cases of the long-convolution family, collected by ``evals bench``.

``CASES[name](n, device, dtype, B, H, H_kv, D)`` convolves ``C = H · D`` channels (fresh random inputs
``[B, C, n]``, filters ``[C, L]`` in float32, skip D) and returns ``(fn, flops)``:
  ``longconv_fft``: filter as long as the input (S4 / Hyena), FFT path;
  ``longconv_fft64``, ``longconv_direct64``: a 64-tap filter by FFT and by the Triton direct kernel (the
  short-filter regime where the two compete; ``gpu_check.py`` sweeps the filter length);
  ``s4d``: S4D prefill with 32 complex modes per channel: kernel generation, long convolution, final state.
FLOPs: direct ``2 n L`` per channel; FFT nominal ``3 · 2.5 m log2 m + 6 (m/2 + 1)`` per channel for the
padded size m (three real FFTs at the usual ``5/2 m log2 m``, one complex product); S4D adds
``8 n N`` (complex multiply-adds) for the kernel and ``8 n N`` for the state.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from longctx.kernels.longconv.ops import fft_size, long_conv
from longctx.kernels.longconv.s4d import s4d_prefill

Case = Callable[[int, torch.device, torch.dtype, int, int, int, int], tuple[Callable[[], object], float]]
S4D_MODES = 32


def fft_flops(n: int, L: int) -> float:
    """Nominal FFT-path FLOPs per channel (see the module docstring)."""
    m = fft_size(n + min(n, L) - 1)
    return 3 * 2.5 * m * math.log2(m) + 6 * (m // 2 + 1)


def _conv(L: int | None, method: str) -> Case:
    def case(n, device, dtype, B, H, H_kv, D):
        C, taps = H * D, L or n
        u = torch.randn(B, C, n, device=device, dtype=dtype)
        k = torch.randn(C, taps, device=device) / taps ** 0.5
        skip = torch.randn(C, device=device)

        def fn():
            return long_conv(u, k, skip, method=method)
        per = 2.0 * n * min(n, taps) if method == "direct" else fft_flops(n, taps)
        return fn, B * C * per
    return case


def s4d_inputs(C: int, N: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """S4D-Lin parameters: log_dt in [log 1e-3, log 1e-1], A = -1/2 + iπn, C complex normal, D normal."""
    log_dt = torch.rand(C, device=device) * math.log(100) + math.log(1e-3)
    A = torch.complex(torch.full((C, N), -0.5, device=device),
                      math.pi * torch.arange(N, device=device, dtype=torch.float32).expand(C, N))
    return log_dt, A, torch.randn(C, N, device=device, dtype=torch.complex64), torch.randn(C, device=device)


def _s4d(n, device, dtype, B, H, H_kv, D):
    C = H * D
    u = torch.randn(B, C, n, device=device, dtype=dtype)
    log_dt, A, Cm, skip = s4d_inputs(C, S4D_MODES, device)

    def fn():
        return s4d_prefill(u, log_dt, A, Cm, skip)
    return fn, float(C * (8 * n * S4D_MODES * (1 + B) + B * fft_flops(n, n)))


CASES: dict[str, Case] = {
    "longconv_fft": _conv(None, "fft"),
    "longconv_fft64": _conv(64, "fft"),
    "longconv_direct64": _conv(64, "direct"),
    "s4d": _s4d,
}
