"""Where ``dsa_select``'s time goes at one size: per-kernel CUDA time (torch.profiler), rows redone exactly,
and the median time for a few ``sample_step`` values. GPU only.

Run (device, repo root): ``python -m benchmarks.dsa.profile_select [T]`` (default T = 131072, k = 2048,
HI = 4, DI = 64, bf16: the bench's shape).
"""
from __future__ import annotations

import sys

import torch

from longctx.kernels.dsa import dsa_select, ops
from benchmarks.gpu_check_utils import timed


def main(T: int, topk: int = 2048) -> None:
    qi = torch.randn(1, 4, T, 64, device="cuda", dtype=torch.bfloat16)
    ki = torch.randn(1, T, 64, device="cuda", dtype=torch.bfloat16)
    w = torch.rand(1, T, 4, device="cuda", dtype=torch.bfloat16)
    redone = []
    real = ops._exact_row
    ops._exact_row = lambda *a: redone.append(a[3]) or real(*a)
    dsa_select(qi, ki, w, topk)
    torch.cuda.synchronize()
    print(f"T={T} topk={topk}: rows redone exactly {len(redone)}")
    ops._exact_row = real
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        dsa_select(qi, ki, w, topk)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=10, max_name_column_width=60))
    for step in (8, 16, 32):
        dsa_select(qi, ki, w, topk, sample_step=step)
        print(f"sample_step={step}: {timed(lambda s=step: dsa_select(qi, ki, w, topk, sample_step=s), 'cuda'):.2f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 131072)
