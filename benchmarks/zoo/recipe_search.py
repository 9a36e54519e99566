"""Compare training recipes for the dense zoo model side by side on one GPU, inside a time budget.

Each variant is an ``evals train`` command line (extra options over a shared base); all variants
train at once as separate processes (they time-slice the GPU: together they make about the steps one
makes alone), each stops ``--train-s`` after its data are built (``--stop-after``, saving), and its
checkpoint is scored with ``evals run`` on single-needle RULER at its training length. The variants are
``VARIANTS`` below; longctx/models/checkpoints/README.md has the recipe they led to. Run from the repository root:

    python -m benchmarks.zoo.recipe_search --train-s 240 --out search

Prints one row per variant (steps reached, final loss, score per task) and writes ``OUT/search.json``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from longctx.models.zoo import checkpoint

BASE = "--arch dense --batch 16 --save-every 500 --no-progress --seq-len 1024 --lm-fraction 0.2 --copy-fraction 0.5"
NEEDLES = "niah_single_1,niah_single_2,niah_single_3,niah_multikey_1,niah_multikey_2,niah_multiquery,niah_multivalue"
VARIANTS = {
    "curriculum": f"--copy-steps 1000 --steps 5000 --tasks {NEEDLES}",
    "drill": f"--copy-steps 1000 --steps 5000 --tasks {NEEDLES} --drill-fraction 0.5",
    "drill_single": "--copy-steps 1000 --steps 5000 --tasks niah_single_1,niah_single_2,niah_single_3 --drill-fraction 0.5",
    "drill_only": f"--copy-steps 1000 --steps 5000 --tasks {NEEDLES} --drill-fraction 0.9",
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
    p.add_argument("--ship", type=Path, default=None, help="also write each variant's checkpoint here in 8 bits")
    a = p.parse_args()
    names = a.variants.split(",")
    evals = [sys.executable, "-m", "longctx.evals"]
    procs, logs = {}, {}
    for name in names:
        (a.out / name).mkdir(parents=True, exist_ok=True)
        logs[name] = (a.out / name / "train.log").open("w")
        cmd = [*evals, "train", *shlex.split(BASE), *shlex.split(VARIANTS[name]), "--out", str(a.out / name),
               "--stop-after", str(a.train_s)]
        procs[name] = subprocess.Popen(cmd, stdout=logs[name], stderr=subprocess.STDOUT)
    for pr in procs.values():
        pr.wait()
    rows = []
    for name in names:
        run_dir = a.out / name / "dense"
        losses = [json.loads(line) for line in (run_dir / "loss.jsonl").read_text().splitlines()] if (run_dir / "loss.jsonl").is_file() else []
        card = json.loads((run_dir / "card.json").read_text()) if (run_dir / "card.json").is_file() else None
        row = {"variant": name, "args": VARIANTS[name], "steps_logged": losses[-1]["step"] if losses else 0,
               "checkpoint_steps": card["steps"] if card else 0, "last_loss": losses[-1]["loss"] if losses else None,
               "scores": {}}
        if card and a.ship is not None:
            model, full_card = checkpoint.load(run_dir)
            checkpoint.save(a.ship / name, model, full_card, int8=True)
            shutil.copy(run_dir / "loss.jsonl", a.ship / name / "loss.jsonl")
        if card:
            res = a.out / name / "results"
            subprocess.run([*evals, "run", EVAL_TASKS, "--ctx", str(seq_len(BASE + " " + VARIANTS[name])), "--model",
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
