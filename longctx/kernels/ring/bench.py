"""Ring attention benchmark: time and per-device memory against one device, n doubling until it no longer fits.

Run on GPUs: ``torchrun --nproc-per-node 2 -m longctx.kernels.ring.bench`` (NCCL, bfloat16). On the CPU the
same command runs under gloo in float32 at small n, so the script itself is exercised:
``torchrun --nproc-per-node 2 -m longctx.kernels.ring.bench --n-start 512 --max-n 2048``.

For each n, every rank holds n/world tokens (zigzag layout). Printed per n: ring time (max over ranks),
peak memory per device, single-device causal attention time at the same n (rank 0 alone; PyTorch SDPA on
GPU, the reference block on CPU; "-" when it does not fit) and ratio = ring time / (single time / world),
1.0 being ideal. n doubles while the estimated need fits free memory on every rank and the last ring step
took less than ``--budget-s``.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

from longctx.kernels.ring import ring_attention
from longctx.kernels.ring.reference import block_attention_lse

_NEED = 8  # bytes needed per byte of local q/k/v input: inputs, output, fp32 accumulators, a k/v in flight


def _timed(fn, repeats: int, cuda: bool, barrier: bool = True) -> float:
    """Best of ``repeats`` wall times after one warm-up; ``barrier`` lines the ranks up before each."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        if barrier:
            dist.barrier()
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def _fits(nbytes: int, device: torch.device) -> bool:
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else float("inf")
    ok = torch.tensor([int(_NEED * nbytes <= free)], device=device)
    dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


def _single(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if q.is_cuda:  # heads repeated so that SDPA picks its flash backend
        group = q.shape[1] // k.shape[1]
        return F.scaled_dot_product_attention(q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1), is_causal=True)
    return block_attention_lse(q, k, v, causal=True)[0]


def _shape(args, T: int) -> list[tuple[int, ...]]:
    return [(args.batch, h, T, args.dim) for h in (args.heads, args.kv_heads, args.kv_heads)]


def _nbytes(shapes: list[tuple[int, ...]], dtype: torch.dtype) -> int:
    return sum(torch.Size(s).numel() for s in shapes) * dtype.itemsize


def _time_on(fn, shapes: list[tuple[int, ...]], seed: int, device: torch.device, dtype: torch.dtype,
             repeats: int, barrier: bool) -> float:
    """Best time of ``fn(q, k, v)`` on random inputs of ``shapes``; the inputs are freed on return."""
    g = torch.Generator(device=device).manual_seed(seed)
    q, k, v = (torch.randn(s, generator=g, device=device, dtype=dtype) for s in shapes)
    return _timed(lambda: fn(q, k, v), repeats, device.type == "cuda", barrier)


def bench_n(args, n: int, rank: int, world: int, device: torch.device, dtype: torch.dtype) -> dict | None:
    """One row of the table, or None when n does not fit on some rank."""
    cuda = device.type == "cuda"
    local = _shape(args, n // world)
    if not _fits(_nbytes(local, dtype), device):
        return None
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    ring_s = _time_on(ring_attention, local, rank, device, dtype, args.repeats, barrier=True)
    t = torch.tensor([ring_s, torch.cuda.max_memory_allocated(device) if cuda else 0], device=device, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    ring_s, mem = t.tolist()
    single = None
    free = torch.cuda.mem_get_info(device)[0] if cuda else float("inf")
    if rank == 0 and _NEED * _nbytes(_shape(args, n), dtype) <= free:
        single = _time_on(_single, _shape(args, n), 0, device, dtype, args.repeats, barrier=False)
    dist.barrier()
    return {"n": n, "world": world, "ring_s": ring_s, "peak_mem_gib_per_device": mem / 2**30 if cuda else None,
            "single_s": single, "ratio_to_ideal": ring_s / (single / world) if single else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-start", type=int, default=None, help="first n (default: 65536 on GPU, 512 on CPU)")
    ap.add_argument("--max-n", type=int, default=None, help="stop after this n (default: 2**24 on GPU, 2048 on CPU)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=60.0, help="stop doubling once a ring step takes longer")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON lines")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    n, max_n = args.n_start or (1 << 16 if cuda else 512), args.max_n or (1 << 24 if cuda else 2048)
    if n % (2 * world):
        raise SystemExit(f"--n-start {n} is not divisible by 2*world={2 * world}")
    if rank == 0:
        print(f"ring attention, world {world} on {torch.cuda.get_device_name(device) if cuda else 'CPU (gloo)'}, "
              f"B{args.batch} H{args.heads} H_kv{args.kv_heads} D{args.dim} {dtype}")
        print(f"{'n':>10} {'ring s':>10} {'GiB/dev':>8} {'1-dev s':>10} {'ratio':>6}")
    try:
        while n <= max_n:
            row = bench_n(args, n, rank, world, device, dtype)
            if row is None:
                break
            if rank == 0:
                fmt = lambda x, f: "-" if x is None else format(x, f)  # noqa: E731
                print(json.dumps(row) if args.json else
                      f"{n:>10} {row['ring_s']:>10.4f} {fmt(row['peak_mem_gib_per_device'], '8.2f'):>8} "
                      f"{fmt(row['single_s'], '10.4f'):>10} {fmt(row['ratio_to_ideal'], '6.2f'):>6}", flush=True)
            if row["ring_s"] > args.budget_s:
                break
            n *= 2
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
