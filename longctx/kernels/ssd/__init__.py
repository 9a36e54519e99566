"""Mamba-2 family: SSD chunked scan and recurrent step, and the short causal depthwise convolution.

Layout ``[B, H, T, ...]``: x ``[B, H, T, P]``, dt ``[B, H, T]``, B/C ``[B, G, T, N]``, state ``[B, H, N, P]``;
the convolution is channels-first ``[B, D, T]`` with conv state ``[B, D, W - 1]``. Naive recurrences in
``reference.py``; the scan runs on ``kernels.linear``'s chunk kernels (Triton on CUDA or under
``TRITON_INTERPRET=1``, chunked PyTorch on CPU), the convolution on its own Triton kernel.
"""

from longctx.kernels.ssd.ops import causal_conv1d, causal_conv1d_step, ssd_chunk_scan, ssd_step

__all__ = ["causal_conv1d", "causal_conv1d_step", "ssd_chunk_scan", "ssd_step"]
