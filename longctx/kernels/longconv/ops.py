"""Public long-convolution ops: causal depthwise convolution by FFT or by direct sum, and its last position.

Two implementations of ``y = k * u (+ D u)`` (see ``reference.py``):
  ``fft``: zero-pad to a power of two >= T + L - 1 (so the circular convolution is the linear one), rfft,
  pointwise product, irfft, in float32 (float64 for float64 inputs); O(T log T), autograd-capable PyTorch.
  ``direct``: the Triton kernel of ``triton_direct.py`` on CUDA or under ``TRITON_INTERPRET=1`` (grouped
  ``F.conv1d`` elsewhere); O(T · L), for short filters.
``method="auto"`` picks by filter length with ``DIRECT_MAX_TAPS``.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F

from longctx.kernels.backend import use_triton

# Crossover of method="auto": the direct kernel for filters of at most this many taps, FFT above.
# Set from the H100 sweep of `python -m benchmarks.longconv.gpu_check` (n = 64K, C = 1024, bf16; README.md):
# direct 4.30 ms vs FFT 6.39 ms at 128 taps, 8.60 vs 6.40 at 256. A CPU or interpreter timing says nothing here.
DIRECT_MAX_TAPS = 128
METHODS = ("auto", "fft", "direct")


def _check(u: torch.Tensor, k: torch.Tensor, D: torch.Tensor | None, method: str) -> None:
    if u.dim() != 3 or not u.is_floating_point():
        raise ValueError(f"u: expected a floating [B, C, T] tensor, got {tuple(u.shape)} {u.dtype}")
    if u.shape[-1] < 1:
        raise ValueError("u: empty time axis (T = 0)")
    if k.dim() != 2 or k.shape[0] != u.shape[1] or k.shape[1] < 1 or not k.is_floating_point():
        raise ValueError(f"k: shape {tuple(k.shape)} {k.dtype}, expected a floating [{u.shape[1]}, L] with L >= 1")
    if D is not None and tuple(D.shape) != (u.shape[1],):
        raise ValueError(f"D: shape {tuple(D.shape)}, expected [{u.shape[1]}]")
    for name, t in (("k", k), ("D", D)):
        if t is not None and t.device != u.device:
            raise ValueError(f"{name}: on {t.device}, u on {u.device}")
    if method not in METHODS:
        raise ValueError(f"method: {method!r}, expected one of {', '.join(METHODS)}")


def fft_size(n: int) -> int:
    """The power of two the FFT path pads a linear convolution of output length ``n`` to."""
    return 1 << max(0, (n - 1).bit_length())


def _fft(u: torch.Tensor, k: torch.Tensor, D: torch.Tensor | None) -> torch.Tensor:
    T, L = u.shape[-1], k.shape[-1]
    acc = torch.promote_types(u.dtype, torch.float32)
    n = fft_size(T + L - 1)
    y = torch.fft.irfft(torch.fft.rfft(u.to(acc), n=n) * torch.fft.rfft(k.to(acc), n=n), n=n)[..., :T]
    if D is not None:
        y = y + D.to(acc)[:, None] * u.to(acc)
    return y.to(u.dtype)


def _direct(u: torch.Tensor, k: torch.Tensor, D: torch.Tensor | None) -> torch.Tensor:
    if use_triton(u):
        from longctx.kernels.longconv.triton_direct import direct_forward

        return direct_forward(u.contiguous(), k.contiguous(), None if D is None else D.contiguous())
    acc = torch.promote_types(u.dtype, torch.float32)
    L = k.shape[-1]
    y = F.conv1d(F.pad(u.to(acc), (L - 1, 0)), k.flip(-1)[:, None, :].to(acc), groups=u.shape[1])
    if D is not None:
        y = y + D.to(acc)[:, None] * u.to(acc)
    return y.to(u.dtype)


def long_conv(u: torch.Tensor, k: torch.Tensor, D: torch.Tensor | None = None, *,
              method: str = "auto") -> torch.Tensor:
    """Causal depthwise long convolution. u: [B, C, T]; k: [C, L] (taps past T are ignored); D: [C].
    Returns y: [B, C, T] in u's dtype, ``y[:, c, t] = Σ_{s<=t} k[c, s] u[:, c, t-s] + D[c] u[:, c, t]``.
    ``method``: "fft" (autograd-capable), "direct" (Triton, no backward on CUDA) or "auto".
    Usage: ``y = long_conv(x.transpose(1, 2), s4d_kernel(log_dt, A, C, T), D)``.
    """
    _check(u, k, D, method)
    k = k[:, : u.shape[-1]]
    if method == "auto":
        method = "direct" if k.shape[-1] <= DIRECT_MAX_TAPS else "fft"
    return _fft(u, k, D) if method == "fft" else _direct(u, k, D)


def long_conv_last(u: torch.Tensor, k: torch.Tensor, D: torch.Tensor | None = None) -> torch.Tensor:
    """The output at the last position only, by a direct dot product: O(T) per channel (decoding with the
    whole input history kept). u: [B, C, T]; k: [C, L]; D: [C]. Returns y: [B, C] in u's dtype.
    """
    _check(u, k, D, "auto")
    taps = min(u.shape[-1], k.shape[-1])
    acc = torch.promote_types(u.dtype, torch.float32)
    recent = u[:, :, u.shape[-1] - taps:].flip(-1).to(acc)          # u[T-1], u[T-2], ..., u[T-taps]
    y = (recent * k[:, :taps].to(acc)).sum(-1)
    if D is not None:
        y = y + D.to(acc) * u[:, :, -1].to(acc)
    return y.to(u.dtype)
