"""Does each zoo mixer form an in-context copy circuit, and at which learning rate?

Every run trains a fresh shipped-size model (``registry.config(arch, "small")``: 4 layers, 3.0-3.3M
parameters, byte vocabulary) from scratch on random-span copy rows only (``evals.train_copy``'s ``random``
kind, 256 bytes, every byte a target; the curriculum's copy phase with ``--copy-spans random``), with the
zoo's optimizer and schedule, then measures on held-out rows of the same kind (``probe_rows``: a 16-byte random
span between spaces in essay text, repeated 100 bytes later) the cross-entropy of the span and of its repeat.
A model that copies predicts the repeat far below the first copy's ~3.6 nats a byte (ln 36); one that does not,
at about the same. The JSON also keeps ``recall_diagnosis.copy_losses`` (a 64-byte span right after BOS, longer
than any training span), the measure of the shipped checkpoints' copy table. Runs go ``--jobs``
at a time, one process each; each writes ``OUT/ARCH-lrLR.json``, the parent ``OUT/copy_sweep.json`` and a
table. From the repository root:

    python -m benchmarks.zoo.copy_sweep --lr 3e-3,1e-2 --steps 2000 --jobs 18 --compile --out /tmp/copy
    python -m benchmarks.zoo.copy_sweep --arch dense,linear --size tiny --steps 20 --device cpu --out /tmp/c  # smoke
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.zoo.children import child_flags, run_children
from benchmarks.zoo.mqar_sweep import parse_knobs, train_recall
from benchmarks.zoo.recall_diagnosis import copy_losses, copy_probe_rows
from longctx.evals.train import build_copy_data, cached
from longctx.models.zoo import registry

WIDTH = 256


def probe_rows(n: int = 64, span: int = 16, gap: int = 100, seed: int = 11) -> tuple[torch.Tensor, slice, slice]:
    """Held-out rows of the training rows' kind: essay text with one random span of ``span`` letters and digits
    between spaces (training spans are 8-24), repeated ``gap`` bytes later. Returns (ids [n, 256], the target
    logit positions that predict the first span and the repeat, each span's first 2 bytes left out; for
    ``recall_diagnosis.copy_losses``)."""
    from longctx.evals.train import essay_bytes
    from longctx.evals.train_copy import ALPHABET
    from longctx.models.zoo.trunk import BOS

    text, rng, rows = essay_bytes(1), random.Random(seed), []
    lead = 40
    for _ in range(n):
        a, b, c = (rng.randrange(0, len(text) - WIDTH) for _ in range(3))
        word = b" " + bytes(rng.choice(ALPHABET) for _ in range(span)) + b" "
        row = text[a:a + lead] + word + text[b:b + gap] + word + text[c:c + WIDTH]
        rows.append([BOS, *row[:WIDTH - 1]])
    first = lead + 2 + 2          # row position of the span's third byte (BOS at 0, the space at lead + 1)
    repeat = first + span + 2 + gap
    # logits at t predict t + 1: target positions p are read at t = p - 1
    return torch.tensor(rows), slice(first - 1, first - 1 + span - 2), slice(repeat - 1, repeat - 1 + span - 2)


def run_one(arch: str, lr: float, a: argparse.Namespace) -> dict:
    base = registry.config(arch, a.size)
    cfg = replace(base, mixer={**base.mixer, **parse_knobs(a.knobs)})
    tokens = cached(a.out / f"copy-{WIDTH}-{a.rows}-random.safetensors",
                    lambda: build_copy_data(WIDTH, a.rows, 0, "random")).tokens.long()

    def batch_at(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.arange(step * a.batch, (step + 1) * a.batch) % len(tokens)
        rows = tokens[idx]
        return rows[:, :-1], rows[:, 1:]

    start = time.time()
    model, log = train_recall(cfg, batch_at, a.steps, lr, a.device, stop_at=a.stop_at, compiled=a.compile)
    first, repeat = copy_losses(model, *probe_rows())
    first64, repeat64 = copy_losses(model, *copy_probe_rows("random", n=64))
    return {"arch": arch, "size": a.size, "knobs": cfg.mixer, "parameters": model.num_params(), "lr": lr,
            "steps": log[-1]["step"], "batch": a.batch, "width": WIDTH, "compiled": a.compile,
            "first_span_nats": round(first, 3), "repeat_nats": round(repeat, 3),
            "first_span64_nats": round(first64, 3), "repeat64_nats": round(repeat64, 3), "final_loss": log[-1]["loss"],
            "seconds": round(time.time() - start, 1), "loss_log": log}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default=",".join(registry.ARCHS))
    p.add_argument("--size", default="small", choices=["tiny", "small"])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rows", type=int, default=65536, help="training rows generated (the data pool)")
    p.add_argument("--knobs", default="", help="mixer knobs for every run, e.g. conv=4")
    p.add_argument("--lr", default="3e-3", help="peak learning rate(s), comma-separated: each arch trains at each")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, one process each")
    p.add_argument("--compile", action="store_true", help="train through torch.compile (CUDA graphs on a GPU)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--stop-at", type=float, default=None, help="a time.time() at which every run stops training")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)   # ARCH:LR, run by the parent
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.one:
        arch, lr = a.one.split(":")
        (a.out / f"{arch}-lr{lr}.json").write_text(json.dumps(run_one(arch, float(lr), a)))
        return
    archs, lrs = a.arch.split(","), a.lr.split(",")
    unknown = [x for x in archs if x not in registry.ARCHS]
    if unknown:
        p.error(f"unknown --arch {unknown}; known: {', '.join(registry.ARCHS)}")
    cached(a.out / f"copy-{WIDTH}-{a.rows}-random.safetensors", lambda: build_copy_data(WIDTH, a.rows, 0, "random"))
    runs = [(arch, lr) for lr in lrs for arch in archs]
    flags = child_flags(a, ("one", "jobs", "arch", "lr"))
    codes, wall = run_children("benchmarks.zoo.copy_sweep", flags, runs, lambda r: f"{r[0]}-lr{r[1]}", a.out, a.jobs)
    results = [json.loads(f.read_text()) for arch, lr in runs if (f := a.out / f"{arch}-lr{lr}.json").is_file()]
    summary = {"command": " ".join(sys.argv), "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
               "wall_s": wall,
               "failed": [f"{r[0]}-lr{r[1]}" for r, c in zip(runs, codes) if c], "runs": results}
    (a.out / "copy_sweep.json").write_text(json.dumps(summary, indent=1))
    print(f"random-span copy, {a.size} models, {a.steps} steps x {a.batch} x {WIDTH} bytes: "
          "first span / repeat, nats a byte (* = stopped early)")
    print("arch".ljust(12) + "".join(f"lr {lr}".rjust(18) for lr in lrs))
    for arch in archs:
        cells = []
        for lr in lrs:
            r = next((r for r in results if r["arch"] == arch and r["lr"] == float(lr)), None)
            cells.append("-" if r is None else f"{r['first_span_nats']:.2f} / {r['repeat_nats']:.2f}"
                         + ("*" if r["steps"] < a.steps else ""))
        print(arch.ljust(12) + "".join(c.rjust(18) for c in cells))
    print("failed:", summary["failed"] or "none", f"wall {summary['wall_s']} s")


if __name__ == "__main__":
    main()
