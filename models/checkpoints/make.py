"""How the shipped zoo checkpoints were made, on one GPU inside a fixed time budget.

Times one training step of each architecture, picks the step count that fits the budget for all
of them (the recipe stays the same for every architecture: same steps, batch, length, data),
runs ``evals train``, then scores each checkpoint with ``evals run`` on single-needle RULER at the
training length. Run from the repository root:

    python models/checkpoints/make.py --arch dense,linear --budget-s 240 --out runs --results results-zoo
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from models.zoo import registry
from models.zoo.trainer import loss_fn


def step_seconds(arch: str, batch: int, seq_len: int) -> float:
    """Seconds per optimizer step at the shipped size (bf16 autocast), after 3 warm-up steps."""
    model = registry.build(registry.config(arch)).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randint(0, 256, (batch, seq_len + 1), device="cuda")
    w = torch.ones(x.shape, device="cuda")
    for i in range(13):
        if i == 3:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(model, x, w)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / 10


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="dense,linear")
    p.add_argument("--budget-s", type=float, default=240.0, help="training seconds for all architectures together")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--max-steps", type=int, default=4000)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--out", default="runs")
    p.add_argument("--results", default="results-zoo")
    a = p.parse_args()
    archs = a.arch.split(",")
    per_step = {arch: step_seconds(arch, a.batch, a.seq_len) for arch in archs}
    steps = min(a.max_steps, int(a.budget_s / sum(per_step.values()) // 100 * 100))
    print(json.dumps({"seconds_per_step": per_step, "steps": steps}), flush=True)
    run = [sys.executable, "-m", "evals"]
    subprocess.run([*run, "train", "--arch", a.arch, "--steps", str(steps), "--batch", str(a.batch),
                    "--seq-len", str(a.seq_len), "--out", a.out, "--no-progress"], check=True)
    for arch in archs:
        subprocess.run([*run, "run", "niah_single_1,niah_single_2,niah_single_3", "--ctx", str(a.seq_len),
                        "--model", f"zoo:{arch}@{Path(a.out) / arch}", "--samples", str(a.samples), "-o", a.results],
                       check=True)


if __name__ == "__main__":
    main()
