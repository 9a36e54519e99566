"""Compare training recipes for the dense zoo model side by side on one GPU, inside a time budget.

Each variant is a ``TrainConfig`` (``evals train``'s options: a few fields over a shared base); all
variants train at once as separate processes (they time-slice the GPU: together they make about the
steps one makes alone), each stops ``--train-s`` after its data are built (``stop_after``, saving), and
its checkpoint is scored (``run_eval``, what ``evals run`` runs) on single-needle RULER at its training
length. Run from the repository root:

    python -m benchmarks.zoo.recipe_search --train-s 240 --out search

Prints one row per variant (steps reached, final loss, score per task) and writes ``OUT/search.json``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from itertools import repeat
from pathlib import Path

from rich.console import Console

from benchmarks.zoo.make import run_logged
from longctx.evals.run import run_eval
from longctx.evals.runner import RunConfig
from longctx.evals.train import TrainConfig, train_curriculum
from longctx.models.zoo import checkpoint

BASE = TrainConfig(batch=16, save_every=500, seq_len=1024, lm_fraction=0.2, copy_fraction=0.5, copy_steps=1000, steps=5000)
NEEDLES = ("niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2", "niah_multiquery",
           "niah_multivalue")
EVAL_TASKS = ["niah_single_1", "niah_single_2", "niah_single_3"]
VARIANTS = {
    "curriculum": replace(BASE, tasks=NEEDLES),
    "drill": replace(BASE, tasks=NEEDLES, drill_fraction=0.5),
    "drill_single": replace(BASE, tasks=tuple(EVAL_TASKS), drill_fraction=0.5),
    "drill_only": replace(BASE, tasks=NEEDLES, drill_fraction=0.9),
}


def train_variant(name: str, out: Path, train_s: float) -> int:
    """Train variant ``name`` (the dense model) into ``out/name`` in a worker process, its output in
    ``out/name/train.log``; 1 if it failed."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    return run_logged(folder / "train.log",
                      lambda: train_curriculum(["dense"], VARIANTS[name], folder, progress=False, stop_after=train_s))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--train-s", type=float, default=240.0, help="wall seconds of training for every variant")
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--out", type=Path, default=Path("search"))
    p.add_argument("--ship", type=Path, default=None, help="also write each variant's checkpoint here in 8 bits")
    a = p.parse_args()
    names = a.variants.split(",")
    with ProcessPoolExecutor(len(names), mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(train_variant, names, repeat(a.out), repeat(a.train_s)))
    quiet = Console(quiet=True)
    rows = []
    for name in names:
        run_dir = a.out / name / "dense"
        losses = [json.loads(line) for line in (run_dir / "loss.jsonl").read_text().splitlines()] if (run_dir / "loss.jsonl").is_file() else []
        card = json.loads((run_dir / "card.json").read_text()) if (run_dir / "card.json").is_file() else None
        row = {"variant": name, "config": asdict(VARIANTS[name]), "steps_logged": losses[-1]["step"] if losses else 0,
               "checkpoint_steps": card["steps"] if card else 0, "last_loss": losses[-1]["loss"] if losses else None,
               "scores": {}}
        if card and a.ship is not None:
            model, full_card = checkpoint.load(run_dir)
            checkpoint.save(a.ship / name, model, full_card, int8=True)
            shutil.copy(run_dir / "loss.jsonl", a.ship / name / "loss.jsonl")
        if card:
            res = a.out / name / "results"
            try:
                run_eval(f"zoo:dense@{run_dir}", RunConfig(EVAL_TASKS, [VARIANTS[name].seq_len], a.samples, out=res),
                         console=quiet)
            except Exception as e:  # a variant that cannot be scored shows no scores; the others still are
                print(f"{name}: scoring failed: {e}", flush=True)
            for m in res.rglob("metrics.json"):
                d = json.loads(m.read_text())
                row["scores"][d["task"]] = d["mean"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    (a.out / "search.json").write_text(json.dumps(rows, indent=2))
    print(f"{'variant':<14} {'ckpt steps':>10} {'loss':>8}  " + "  ".join(t[-8:] for t in EVAL_TASKS))
    for r in rows:
        cells = "  ".join(f"{r['scores'].get(t, float('nan')):8.2f}" for t in EVAL_TASKS)
        print(f"{r['variant']:<14} {r['checkpoint_steps']:>10} {r['last_loss'] or float('nan'):>8.3f}  {cells}")


if __name__ == "__main__":
    main()
