"""Compare training recipes for the dense zoo model side by side on one GPU, inside a time budget.

Each variant is an ``evals train`` command line (extra options over a shared base); all variants
train at once as separate processes (small models leave the GPU mostly idle, so they overlap well),
each is stopped ``--train-s`` after its data are built, and its last checkpoint (``--save-every``) is scored with
``evals run`` on single-needle RULER at its training length. Run from the repository root:

    python models/checkpoints/recipe_search.py --train-s 240 --out search

Prints one row per variant (steps reached, final loss, score per task) and writes ``OUT/search.json``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

BASE = "--arch dense --batch 16 --steps 4000 --save-every 100 --no-progress"
VARIANTS = {
    "base": "--seq-len 2048",
    "copy": "--seq-len 2048 --lm-fraction 0.3 --copy-fraction 0.7",
    "copy_single": "--seq-len 2048 --lm-fraction 0.3 --copy-fraction 0.7 --tasks niah_single_1,niah_single_2,niah_single_3",
    "copy_1k": "--seq-len 1024 --lm-fraction 0.3 --copy-fraction 0.7 --tasks niah_single_1,niah_single_2,niah_single_3,niah_multikey_1,niah_multikey_2,niah_multiquery,niah_multivalue",
    "copy_lr1e-3": "--seq-len 2048 --lm-fraction 0.3 --copy-fraction 0.7 --lr 1e-3",
    "copy_lr4e-3": "--seq-len 2048 --lm-fraction 0.3 --copy-fraction 0.7 --lr 4e-3",
}
EVAL_TASKS = "niah_single_1,niah_single_2,niah_single_3"


def seq_len(args: str) -> int:
    words = shlex.split(args)
    return int(words[words.index("--seq-len") + 1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--train-s", type=float, default=240.0, help="wall seconds of training for every variant")
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--out", type=Path, default=Path("search"))
    a = p.parse_args()
    names = a.variants.split(",")
    evals = [sys.executable, "-m", "evals"]
    procs, logs = {}, {}
    for name in names:
        (a.out / name).mkdir(parents=True, exist_ok=True)
        logs[name] = (a.out / name / "train.log").open("w")
        cmd = [*evals, "train", *shlex.split(BASE), *shlex.split(VARIANTS[name]), "--out", str(a.out / name)]
        procs[name] = subprocess.Popen(cmd, stdout=logs[name], stderr=subprocess.STDOUT)
    started: dict[str, float] = {}   # training starts once the variant's data file is written
    while any(pr.poll() is None for pr in procs.values()):
        for name, pr in procs.items():
            if name not in started and any((a.out / name).glob("data-*.safetensors")):
                started[name] = time.time()
            if pr.poll() is None and name in started and time.time() - started[name] > a.train_s:
                pr.terminate()
        time.sleep(2)
    rows = []
    for name in names:
        run_dir = a.out / name / "dense"
        losses = [json.loads(line) for line in (run_dir / "loss.jsonl").read_text().splitlines()] if (run_dir / "loss.jsonl").is_file() else []
        card = json.loads((run_dir / "card.json").read_text()) if (run_dir / "card.json").is_file() else None
        row = {"variant": name, "args": VARIANTS[name], "steps_logged": losses[-1]["step"] if losses else 0,
               "checkpoint_steps": card["steps"] if card else 0, "last_loss": losses[-1]["loss"] if losses else None,
               "scores": {}}
        if card:
            res = a.out / name / "results"
            subprocess.run([*evals, "run", EVAL_TASKS, "--ctx", str(seq_len(VARIANTS[name])), "--model",
                            f"zoo:dense@{run_dir}", "--samples", str(a.samples), "-o", str(res)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=False)
            for m in res.rglob("metrics.json"):
                d = json.loads(m.read_text())
                row["scores"][d["task"]] = d["mean"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    (a.out / "search.json").write_text(json.dumps(rows, indent=2))
    print(f"{'variant':<14} {'ckpt steps':>10} {'loss':>8}  " + "  ".join(t[-8:] for t in EVAL_TASKS.split(",")))
    for r in rows:
        cells = "  ".join(f"{r['scores'].get(t, float('nan')):8.2f}" for t in EVAL_TASKS.split(","))
        print(f"{r['variant']:<14} {r['checkpoint_steps']:>10} {r['last_loss'] or float('nan'):>8.3f}  {cells}")


if __name__ == "__main__":
    main()
