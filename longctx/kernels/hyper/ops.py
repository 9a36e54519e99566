"""Public HyperAttention op: checks, plan, launch, CPU fallback to the reference."""
from __future__ import annotations

import math

import torch

from longctx.kernels.backend import interpreting, lazy_module, lazy_names, use_triton
from longctx.kernels.flash.checks import check_qkv
from longctx.kernels.hyper.lsh import make_plan
from longctx.kernels.hyper.reference import hyper_ref

triton = lazy_module("triton")
_hyper_fwd, = lazy_names("longctx.kernels.hyper.triton_hyper", "_hyper_fwd")

_LOG2E = 1.4426950408889634


def hyper_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int = 128,
                    n_samples: int = 1024, n_bits: int = 8, seed: int = 0) -> torch.Tensor:
    """Causal HyperAttention: LSH-sorted block-diagonal attention plus ``n_samples`` uniform key columns.

    q: [B, H, T, D]; k, v: [B, H_kv, T, D] -> [B, H, T, D]. Cost O(T * (block_size + n_samples) * D).
    ``o = hyper_attention(q, k, v, block_size=128, n_samples=1024)``
    """
    B, H, H_kv, T, D = check_qkv(q, k, v)
    if block_size not in (16, 32, 64, 128):
        raise ValueError(f"block_size must be 16, 32, 64 or 128, got {block_size!r}")
    if not isinstance(n_samples, int) or n_samples <= 0:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    if n_samples > T:
        raise ValueError(f"n_samples={n_samples} is larger than the sequence length n={T}")
    if not isinstance(n_bits, int) or not 1 <= n_bits <= 30:
        raise ValueError(f"n_bits must be an int in 1..30, got {n_bits!r}")
    plan = make_plan(q, k, block_size, n_samples, n_bits, seed)
    if not use_triton(q):
        return hyper_ref(q, k, v, plan, block_size)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    o = torch.empty_like(q)
    qp = plan.q_perm.to(torch.int32).contiguous()
    kp = plan.k_perm.to(torch.int32).contiguous()
    sp = plan.samples.to(torch.int32).contiguous()
    sb = plan.sample_block.to(torch.int32).contiguous()
    bn = 32 if interpreting() else 64
    _hyper_fwd[(triton.cdiv(T, block_size), B * H)](
        q, k, v, o, qp, kp, sp, sb, q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        o.stride(0), o.stride(1), o.stride(2), H, H_kv, T, _LOG2E / math.sqrt(D), plan.log_weight * _LOG2E,
        NSAMP=n_samples, HEAD_D=D, BLOCK=block_size, BLOCK_N=bn, num_warps=8 if block_size == 128 else 4,
        num_stages=2)
    return o
