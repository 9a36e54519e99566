"""Zoology's MQAR with the zoo's mixers: two layers, each architecture at a few widths, one recipe.

Every run trains a fresh two-layer zoo trunk (the shared embedding, SwiGLU MLP and tied head; the
mixer's own knobs from ``registry.KNOBS['small']``, sliding windows at a quarter of the sequence) on
fresh ``tasks.mqar.mqar_tokens`` batches (vocabulary 8192, as in Zoology), then scores held-out
sequences: a query is right when the argmax at its position is its value. Runs go ``--jobs`` at a
time, one process each, on one GPU; each writes ``OUT/ARCH-dWIDTH.json`` and the parent writes
``OUT/mqar_sweep.json`` and prints the table. From the repository root:

    python -m benchmarks.zoo.mqar_sweep --widths 64,128 --seq-len 256 --pairs 16 --steps 1500 --jobs 8 --compile --out /tmp/mqar
    python -m benchmarks.zoo.mqar_sweep --lr 3e-4,1e-3,3e-3 --widths 64,128 --steps 20000 --jobs 8 --compile \
        --stop-at $(( $(date +%s) + 540 )) --out /tmp/mqar-lr        # one of several calls, see below
    python -m benchmarks.zoo.mqar_sweep --arch dense,mamba2 --widths 64 --seq-len 64 --pairs 4 --steps 300 \
        --vocab 512 --device cpu --out /tmp/mqar-cpu        # a CPU smoke run
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.zoo.children import child_flags, run_children
from longctx.models.zoo import registry
from longctx.models.zoo.trainer import Recipe, forward_of, lr_at, optimizer
from longctx.models.zoo.trunk import Trunk, ZooConfig
from longctx.tasks.mqar import IGNORE, mqar_tokens

Batch = tuple[torch.Tensor, torch.Tensor]   # inputs [B, T] ids, targets [B, T] (IGNORE where not scored)


def recall_config(arch: str, width: int, seq_len: int, vocab_size: int, n_layers: int = 2, n_heads: int = 2,
                  knobs: dict | None = None) -> ZooConfig:
    """The zoo's ``small`` config of ``arch`` at ``width`` and ``n_layers``, with its own vocabulary;
    windowed mixers see a quarter of the sequence, so that a window is a real limit at these lengths;
    ``knobs`` (e.g. ``{"conv": 4}``) override the mixer's own last.
    (ssa's 8 blocks of 64 and dsa's top 128 cover most of a 256-token sequence: there they are near dense.)"""
    base = registry.config(arch, "small")
    mixer = dict(base.mixer)
    if arch in ("swa", "hyper"):
        mixer["window"] = seq_len // 4
    if arch in ("hybrid", "hybrid_ssa"):
        mixer["attn_every"] = 2      # of two layers, the second attends (at 4, both would be Mamba-2)
    mixer.update(knobs or {})
    return replace(base, d_model=width, n_layers=n_layers, n_heads=n_heads, vocab_size=vocab_size,
                   mlp_hidden=round(width * 8 / 3 / 8) * 8, mixer=mixer)


def train_recall(cfg: ZooConfig, batch_at: Callable[[int], Batch], steps: int, lr: float, device: str,
                 warmup: int = 100, seed: int = 0, stop_at: float | None = None,
                 compiled: bool = False, probe: Callable[[Trunk], float] | None = None,
                 probe_every: int = 0, state: Path | None = None) -> tuple[Trunk, list[dict]]:
    """Train a fresh model of ``cfg`` on ``batch_at(step)`` with the zoo's optimizer and schedule (AdamW,
    warm-up, cosine to 10%, clip 1.0, bf16 autocast on a GPU); only targets other than IGNORE count, plus the
    mixers' auxiliary loss (dsa's indexer, ssa's router) as in ``trainer.train_step``.
    ``stop_at``: a ``time.time()`` after which training ends early (the log's last step says where).
    ``compiled``: the forward through ``trainer.forward_of`` (torch.compile, CUDA graphs on a GPU): these
    two-layer models are launch-bound (ten eager runs at once on an H100: 57 ms a step at d 64).
    ``probe``: every ``probe_every`` steps its value on the model (in eval mode) joins the log as ``probe``.
    ``state``: a file that a stopped run leaves (model, optimizer, log, next step) and the same call resumes from,
    on the same batches and schedule; a finished run leaves it too, and training it again only returns it."""
    torch.manual_seed(seed)
    model = registry.build(cfg).to(device)
    recipe = Recipe(steps=steps, lr=lr, warmup=min(warmup, steps), seed=seed)
    opt, log, start = optimizer(model, recipe), [], 0
    if state is not None and state.is_file():
        saved = torch.load(state, map_location=device)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        log, start = [e for e in saved["log"] if not e.get("stopped")], saved["step"]
    forward = forward_of(model, True, batch_at(0)[0][:1].to(device)) if compiled else model
    model.train()
    for step in range(start, steps):
        if stop_at is not None and time.time() > stop_at:
            log.append({"step": step, "loss": log[-1]["loss"] if log else None, "stopped": True})
            break
        x, y = (t.to(device) for t in batch_at(step))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda):
            logits = forward(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=IGNORE)
        aux = model.aux_loss()   # dsa's indexer and ssa's router learn only from this, as in the trainer
        opt.zero_grad(set_to_none=True)
        (loss if aux is None else loss + recipe.aux_weight * aux).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        if (step + 1) % 50 == 0 or step + 1 == steps:
            log.append({"step": step + 1, "loss": round(float(loss.detach()), 4)})
        if probe is not None and probe_every and (step + 1) % probe_every == 0:
            log.append({"step": step + 1, "probe": round(probe(model), 4)})
            model.train()
    else:
        step = steps
    if state is not None:
        state.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "log": log, "step": step}, state)
    return model, log


@torch.no_grad()
def predictions(model: Trunk, batches: list[Batch], device: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(argmax ids [B, T], targets [B, T])`` of each batch, the model in eval mode (bf16 autocast on a GPU)."""
    model.eval()
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda):
            yield model(x).argmax(-1), y


def accuracy(model: Trunk, batches: list[Batch], device: str) -> float:
    """Share of scored positions whose argmax is the target."""
    right = total = 0
    for pred, y in predictions(model, batches, device):
        mask = y != IGNORE
        right += int((pred[mask] == y[mask]).sum())
        total += int(mask.sum())
    return right / max(total, 1)


def mqar_batch(step: int, batch: int, seq_len: int, pairs: int, vocab_size: int, seed: int = 0) -> Batch:
    x, y = mqar_tokens(batch, seq_len, pairs, vocab_size, seed=seed * 1_000_003 + step)
    return torch.from_numpy(x), torch.from_numpy(y)


def parse_knobs(text: str) -> dict:
    """``"conv=4,d_state=16"`` -> ``{"conv": 4, "d_state": 16}`` (numbers where they parse)."""
    knobs = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        try:
            knobs[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else float(value)
        except ValueError:
            knobs[key.strip()] = value.strip()
    return knobs


def run_one(arch: str, width: int, lr: float, a: argparse.Namespace) -> dict:
    cfg = recall_config(arch, width, a.seq_len, a.vocab, n_heads=a.heads, knobs=parse_knobs(a.knobs))
    start = time.time()
    model, log = train_recall(cfg, lambda s: mqar_batch(s, a.batch, a.seq_len, a.pairs, a.vocab, seed=a.seed), a.steps,
                              lr, a.device, seed=a.seed, stop_at=a.stop_at, compiled=a.compile,
                              state=a.state / f"{arch}-d{width}-{lr:g}.pt" if a.state else None)
    test = [mqar_batch(i, 250, a.seq_len, a.pairs, a.vocab, seed=7_777) for i in range(a.test // 250)]
    return {"arch": arch, "d_model": width, "n_layers": cfg.n_layers, "n_heads": a.heads, "knobs": cfg.mixer,
            "parameters": model.num_params(), "seq_len": a.seq_len,
            "pairs": a.pairs, "vocab": a.vocab, "steps": log[-1]["step"], "batch": a.batch, "lr": lr, "seed": a.seed, "compiled": a.compile,
            "accuracy": round(accuracy(model, test, a.device), 4), "final_loss": log[-1]["loss"],
            "seconds": round(time.time() - start, 1), "loss_log": log}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default=",".join(registry.ARCHS))
    p.add_argument("--widths", default="64,128")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--pairs", type=int, default=16)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--heads", type=int, default=2, help="heads a layer (a linear mixer's state is d_model^2 / heads)")
    p.add_argument("--knobs", default="", help="mixer knobs for every run, e.g. conv=4 (linear's short convolution)")
    p.add_argument("--lr", default="1e-3", help="peak learning rate(s), comma-separated: each (arch, width) trains at "
                                                  "each, and the table shows the best (recurrent models recall only in a "
                                                  "narrow window of rates)")
    p.add_argument("--seed", type=int, default=0, help="the initialisation and the training sequences (the held-out "
                                                       "ones stay); give each seed its own --out and --state")
    p.add_argument("--test", type=int, default=1000, help="held-out sequences scored")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, one process each")
    p.add_argument("--compile", action="store_true", help="train through torch.compile (CUDA graphs on a GPU)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--stop-at", type=float, default=None, help="a time.time() at which every run stops training")
    p.add_argument("--state", type=Path, default=None,
                   help="folder of each run's training state: a stopped run resumes from it when run again")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)   # ARCH:WIDTH:LR, run by the parent
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.one:
        arch, width, lr = a.one.split(":")
        res = run_one(arch, int(width), float(lr), a)
        (a.out / f"{arch}-d{width}-lr{lr}.json").write_text(json.dumps(res))
        return
    lrs = a.lr.split(",")
    runs = [(arch, int(w), lr) for lr in lrs for w in a.widths.split(",") for arch in a.arch.split(",")]
    flags = child_flags(a, ("one", "jobs", "arch", "widths", "lr"))
    codes, wall = run_children("benchmarks.zoo.mqar_sweep", flags, runs, lambda r: f"{r[0]}-d{r[1]}-lr{r[2]}", a.out, a.jobs)
    results = [json.loads(f.read_text()) for arch, w, lr in runs if (f := a.out / f"{arch}-d{w}-lr{lr}.json").is_file()]
    summary = {"command": " ".join(sys.argv), "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
               "wall_s": wall,
               "failed": [f"{r[0]}-d{r[1]}-lr{r[2]}" for r, c in zip(runs, codes) if c], "runs": results}
    (a.out / "mqar_sweep.json").write_text(json.dumps(summary, indent=1))
    widths = sorted({r["d_model"] for r in results})
    print(f"MQAR accuracy, seq {a.seq_len}, {a.pairs} pairs, {a.steps} steps x {a.batch}, lr {a.lr}"
          + (" (the best lr of each cell in brackets)" if len(lrs) > 1 else ""))
    print("arch".ljust(12) + "".join(f"d{w}".rjust(18 if len(lrs) > 1 else 9) for w in widths))
    for arch in a.arch.split(","):
        cells = []
        for w in widths:
            mine = [r for r in results if r["arch"] == arch and r["d_model"] == w]
            if not mine:
                cells.append("-")
                continue
            best = max(mine, key=lambda r: r["accuracy"])
            cut = "*" if best["steps"] < a.steps else ""   # stopped by --stop-at
            cells.append(f"{100 * best['accuracy']:.1f}{cut}" + (f" [{best['lr']:g}]" if len(lrs) > 1 else ""))
        print(arch.ljust(12) + "".join(c.rjust(18 if len(lrs) > 1 else 9) for c in cells))
    print("failed:", summary["failed"] or "none", f"wall {summary['wall_s']} s; * = stopped early by --stop-at")


if __name__ == "__main__":
    main()
