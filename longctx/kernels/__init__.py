"""GPU kernels in Triton, each family in its own folder beside a plain-PyTorch reference.

Layout for the whole project: q is ``[B, H, T, D]``, k and v are ``[B, H_kv, T, D]`` (grouped-query
heads, ``H % H_kv == 0``); recurrent states are ``[B, H, D_k, D_v]``. Imports nothing else of the project.
Triton is optional: every op dispatches through ``backend.use_triton`` and without Triton takes its PyTorch path.
"""
