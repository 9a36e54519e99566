"""Mamba-1 selective scan: a chunked Triton prefill with state hand-over and a one-token decoding step.

Layout (channels first, time last, as Mamba's own kernel): x, dt, z ``[B, D, T]``; A ``[D, N]`` (negative);
B, C ``[B, G, N, T]`` (G groups dividing D); D ``[D]``; state ``[B, D, N]`` float32. dt is the positive step
(after softplus). The naive recurrence: ``reference.py``; the differentiable scans for training:
``selective_scan_train`` (Triton, a torch custom op) and ``selective_scan_torch`` (PyTorch, the CPU path).
"""

from longctx.kernels.scan.ops import selective_scan, selective_step
from longctx.kernels.scan.torch_scan import selective_scan_torch
from longctx.kernels.scan.train import selective_scan_train

__all__ = ["selective_scan", "selective_scan_torch", "selective_scan_train", "selective_step"]
