"""Milliseconds a training step of the trainer's own step (batch 16 x 1024 random bytes, bf16 autocast,
clipping, AdamW) in three execution modes: eager, ``torch.compile`` and ``torch.compile`` replayed as CUDA
graphs (``mode="reduce-overhead"``, what ``--compile`` trains with). Shows whether the zoo's small models
are launch-bound on a GPU. ``--profile`` adds, per arch and mode, the kernels a step launches and their time.

    python -m benchmarks.zoo.step_modes --arch dense,ssa,mamba2,hybrid_ssa
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from longctx.models.zoo import registry
from longctx.models.zoo.trainer import Recipe, batch_rows, forward_of, optimizer, train_step

MODES = ("eager", "compile", "cudagraphs")


def step_ms(arch: str, mode: str, batch: int, seq_len: int, steps: int = 40, warmup: int = 5,
            prof: bool = False) -> tuple[float, str]:
    """Milliseconds a step of ``arch`` at the shipped size after ``warmup`` steps (compilation included),
    through ``trainer.forward_of`` as training runs it; with ``prof``, a note on the kernels a step launches."""
    recipe = Recipe(batch=batch)
    torch.manual_seed(0)
    model = registry.build(registry.config(arch)).cuda()
    tokens = torch.randint(0, 256, (8 * batch, seq_len + 1), device="cuda")
    weights = torch.ones(tokens.shape, device="cuda")
    forward = forward_of(model, mode != "eager", tokens[:1, :-1], graphs=mode == "cudagraphs")
    opt = optimizer(model, recipe)

    def one(i: int) -> torch.Tensor:
        rows = batch_rows(i, recipe, tokens.shape[0], "cuda")
        return train_step(model, forward, opt, tokens[rows], weights[rows], None, recipe.lr, recipe)[0]

    for i in range(warmup):
        one(i)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        one(i)
    torch.cuda.synchronize()
    ms = 1000 * (time.perf_counter() - start) / steps
    if not prof:
        return ms, ""
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        for i in range(10):
            one(i)
        torch.cuda.synchronize()
    kernels = [e for e in p.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy = sum(e.self_device_time_total for e in kernels) / 1000 / 10
    return ms, f"{sum(e.count for e in kernels) / 10:.0f} kernels, {busy:.1f} ms of kernel time"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="dense,ssa,mamba2,hybrid_ssa")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--profile", action="store_true")
    a = p.parse_args()
    modes = a.modes.split(",")
    if unknown := [m for m in modes if m not in MODES]:
        p.error(f"--modes: unknown {', '.join(unknown)}; choose from {', '.join(MODES)}")
    for arch in a.arch.split(","):
        for mode in modes:
            ms, note = step_ms(arch, mode, a.batch, a.seq_len, a.steps, prof=a.profile)
            print(f"{arch:12s} {mode:11s} {ms:7.1f} ms a step  {note}", flush=True)


if __name__ == "__main__":
    main()
