"""How the zoo checkpoints are made on a GPU whose calls are time-limited.

``--plan`` times one training step of each architecture at the shipped size and prints what the
recipe would cost. Otherwise it trains every architecture with one recipe (``train_curriculum``,
what ``evals train`` runs: the short copy phase, then the task phase: same steps, batch, length and
data for all), stopping after ``--call-s`` seconds; running the same command again resumes where it
stopped. Architectures whose training is complete are scored (``run_eval``, what ``evals run`` runs)
on single-needle RULER at the training length. Run from the repository root:

    python -m benchmarks.zoo.make --plan
    python -m benchmarks.zoo.make --call-s 500 --out runs --results results-zoo   # repeat until done
    python -m benchmarks.zoo.make --jobs 3 --compile --out runs --results results-zoo   # 3 processes at once
    python -m benchmarks.zoo.make --out runs --results results-zoo --ship models/checkpoints  # 8-bit copies
    python -m benchmarks.zoo.make --arch linear,mamba2 --lr 2e-3,mamba2=1e-2 --out runs   # a rate per architecture
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from benchmarks.zoo.step_modes import step_ms
from longctx.evals.run import run_eval
from longctx.evals.runner import RunConfig
from longctx.evals.train import TrainConfig, train_curriculum, train_table
from longctx.models.zoo import checkpoint, registry


def parse_rates(text: str) -> tuple[float, dict[str, float]]:
    """``"2e-3,mamba2=1e-2"`` -> ``(2e-3, {"mamba2": 1e-2})``: the rate of every architecture not named after it."""
    default, *named = text.split(",")
    rates = {}
    for item in named:
        arch, _, rate = item.partition("=")
        if arch not in registry.ARCHS or not rate:
            raise SystemExit(f"--lr: expected RATE,ARCH=RATE,... with ARCH one of {', '.join(registry.ARCHS)}; got {item!r}")
        rates[arch] = float(rate)
    return float(default), rates


def train_all(archs: list[str], cfg: TrainConfig, jobs: int, out: Path, call_s: float | None,
              rates: dict[str, float] | None = None) -> int:
    """``train_curriculum`` for every architecture (at ``rates[arch]`` where given, else ``cfg.lr``): in this
    process when ``jobs`` is 1, else one process per architecture, ``jobs`` at once on the one GPU, each
    logging to ``OUT/train-ARCH.log``; all stop ``call_s`` seconds after this call began. Returns the
    number of architectures that failed."""
    cfgs = [replace(cfg, lr=(rates or {}).get(arch, cfg.lr)) for arch in archs]
    deadline = None if call_s is None else time.time() + call_s
    if jobs <= 1:
        for lr in dict.fromkeys(c.lr for c in cfgs):   # architectures of one rate train together
            left = None if deadline is None else deadline - time.time()
            if left is not None and left <= 0:
                break
            group = [arch for arch, c in zip(archs, cfgs) if c.lr == lr]
            result = train_curriculum(group, replace(cfg, lr=lr), out, progress=False, stop_after=left)
            Console(stderr=True).print(train_table(result))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        return sum(pool.map(train_logged, archs, cfgs, [out] * len(archs), [deadline] * len(archs)))


def train_logged(arch: str, cfg: TrainConfig, out: Path, deadline: float | None) -> int:
    """One architecture's ``train_curriculum`` in a worker process, its output (ending with its summary
    table) in ``OUT/train-ARCH.log``, stopping at ``deadline`` (a ``time.time()``); 1 if it failed."""
    left = None if deadline is None else deadline - time.time()
    if left is not None and left <= 0:
        return 0
    return run_logged(out / f"train-{arch}.log", lambda: Console(stderr=True).print(
        train_table(train_curriculum([arch], cfg, out, progress=False, stop_after=left))))


def run_logged(path: Path, work: Callable[[], object]) -> int:
    """Run ``work`` in this (worker) process with its stdout and stderr sent to the file ``path``; 0 when it
    returns, 1 when it raises (the traceback goes to the file)."""
    with path.open("w") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            work()
            return 0
        except Exception:
            traceback.print_exc()
            return 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default=",".join(registry.ARCHS))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rows", type=int, default=32768, help="training rows generated per phase")
    p.add_argument("--tasks", default="niah_single_1,niah_single_2,niah_single_3,niah_multikey_1,niah_multikey_2,"
                                      "niah_multiquery,niah_multivalue", help="training tasks (all fit in 1024 bytes)")
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--steps", type=int, default=7000, help="task-phase steps")
    p.add_argument("--lr", default=str(TrainConfig.lr), help="peak learning rate, then ARCH=RATE for architectures "
                                                          "that train at another, e.g. 2e-3,mamba2=1e-2")
    p.add_argument("--lm-fraction", type=float, default=0.4, help="share of the task phase's rows that are plain text")
    p.add_argument("--copy-fraction", type=float, default=1.0, help="share of those text rows that repeat a span")
    p.add_argument("--drill-fraction", type=float, default=0.25, help="share of the task rows that are recall drill rows")
    p.add_argument("--copy-spans", default="essay", choices=["essay", "random"],
                   help="what copy rows repeat (the copy phase and the task phase's copy rows): evals.train_copy")
    p.add_argument("--copy-steps", type=int, default=3000, help="copy-phase steps (256-byte rows, batch x2)")
    p.add_argument("--length-steps", type=int, default=1500, help="steps of the last phase with PoSE position skips")
    p.add_argument("--pose-span", type=int, default=1 << 20, help="that phase's positions spread over [0, N)")
    p.add_argument("--call-s", type=float, default=None, help="stop training after this many seconds; rerun resumes")
    p.add_argument("--plan", action="store_true", help="only time a step of each architecture and print the cost")
    p.add_argument("--compile", action="store_true", help="train (and time) through torch.compile")
    p.add_argument("--jobs", type=int, default=1, help="architectures trained at once, one process each (logs in "
                                                         "OUT/train-ARCH.log): small models leave the GPU idle")
    p.add_argument("--ship", type=Path, default=None,
                   help="write each finished checkpoint here in 8 bits (ARCH/ subfolders) and score that copy")
    p.add_argument("--samples", type=int, default=50, help="samples a task when scoring a finished checkpoint (0: none)")
    p.add_argument("--out", default="runs")
    p.add_argument("--results", default="results-zoo")
    a = p.parse_args()
    archs = a.arch.split(",")
    if a.plan:
        # the trainer's own step, 3 warm-up steps (compilation included) then 10 timed
        per_step = {arch: step_ms(arch, "cudagraphs" if a.compile else "eager", a.batch, a.seq_len, steps=10, warmup=3)[0] / 1000
                    for arch in archs}
        total = sum(per_step.values()) * (a.steps + a.copy_steps / 2)   # a copy step: 2x rows of 1/4 the length
        print(json.dumps({"seconds_per_step": per_step, "predicted_total_s": round(total)}), flush=True)
        return
    lr, rates = parse_rates(a.lr)
    start = time.time()
    cfg = TrainConfig(lr=lr, tasks=tuple(a.tasks.split(",")), seq_len=a.seq_len, rows=a.rows, steps=a.steps, batch=a.batch,
                      lm_fraction=a.lm_fraction, copy_fraction=a.copy_fraction, copy_spans=a.copy_spans,
                      drill_fraction=a.drill_fraction,
                      copy_steps=a.copy_steps, length_steps=a.length_steps, pose_span=a.pose_span, compiled=a.compile)
    failed = train_all(archs, cfg, a.jobs, Path(a.out), a.call_s, rates)
    print(json.dumps({"train_wall_s": round(time.time() - start, 1), "archs": archs, "jobs": a.jobs}), flush=True)
    if failed:
        sys.exit(f"{failed} architecture(s) failed: see {a.out}/train-ARCH.log")
    for arch in archs:
        folder = Path(a.out) / arch
        if not (folder / checkpoint.CARD).is_file() or checkpoint.read_card(folder)["steps"] < (a.length_steps or a.steps) \
                or (a.call_s is not None and time.time() - start > a.call_s + 60):
            continue
        if a.ship is not None:
            model, card = checkpoint.load(folder)
            checkpoint.save(a.ship / arch, model, card, int8=True)
            shutil.copy(folder / "loss.jsonl", a.ship / arch / "loss.jsonl")
            folder = a.ship / arch
        if a.samples == 0:
            continue
        run_eval(f"zoo:{arch}@{folder}", RunConfig(["niah_single_1", "niah_single_2", "niah_single_3"], [a.seq_len],
                                                    a.samples, out=Path(a.results)))


if __name__ == "__main__":
    main()
