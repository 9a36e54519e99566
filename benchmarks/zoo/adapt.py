"""Fine-tune every shipped zoo checkpoint to the suite's RULER prompt wording, ship it in 8 bits and score it,
in one time-limited GPU call.

Every architecture gets the same recipe: ``--steps`` length-phase steps (``train_curriculum`` with
``--steps 0 --length-steps N --init``: PoSE position skips, so the rotary models keep their reach beyond the
rows' length) from ``longctx/models/checkpoints/ARCH``, on ``make.py``'s task-phase data (its task list and
fractions, 1024-byte rows) built with the current generators. ``--jobs`` architectures train at once in
worker processes (tiny models leave an H100 idle); each then ships its weights in 8 bits into ``--ship``
(the card keeps the starting checkpoint's card as ``init``) and is scored with ``run_eval`` on single needles
and the decay probe. After each architecture, ``OUT/checkpoints-N.tar`` (shipped folders, 4 a tar) and
``OUT/run.tar`` (training logs, the packed results ``zoo.samples.jsonl.gz`` and ``adapt.json``) are rewritten,
so a call cut short still returns what finished. ``--init DIR`` starts from other checkpoints than the shipped
ones (the recipe's first phase: ``benchmarks/zoo/retrain.sh``). Run from the repository root:

    python -m benchmarks.zoo.adapt --cpu-smoke --out /tmp/adapt-smoke        # 2 steps, 2 tiny archs, 1K
    python -m benchmarks.zoo.adapt --compile --jobs 13 --out $OUT --work /tmp/adapt --budget-s 420
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tarfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from longctx.evals.results_pack import pack
from longctx.evals.run import run_eval
from longctx.evals.runner import RunConfig
from longctx.evals.train import LENGTH_LR_SCALE, TrainConfig, task_data, train_curriculum, train_table
from longctx.models.zoo import checkpoint, registry
from longctx.models.zoo.model import CHECKPOINTS
from longctx.tasks.registry import TASKS, resolve

MAKE_TASKS = ("niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
              "niah_multiquery", "niah_multivalue")   # make.py's --tasks
EVAL_TASKS = ["niah_single_1", "niah_single_2", "niah_single_3", "decay_distance"]
DEFAULT = "hybrid_ssa"
TAR_ARCHS = 4   # shipped folders a tar (~3.3 MB each): the device returns at most 8 files of 16 MB


def model_spec(arch: str, ship: Path) -> str:
    """``zoo:ARCH`` when shipped into the package's checkpoints, else ``zoo:ARCH@SHIP/ARCH``."""
    return f"zoo:{arch}" if ship.resolve() == CHECKPOINTS.resolve() else f"zoo:{arch}@{ship / arch}"


def adapt_one(arch: str, cfg: TrainConfig, a: argparse.Namespace, deadline: float) -> dict:
    """Train, ship and score one architecture in a worker process (output in ``WORK/adapt-ARCH.log``)."""
    work, ship = Path(a.work), Path(a.ship)
    cfg = replace(cfg, lr=a.lr_for.get(arch, a.lr) / LENGTH_LR_SCALE)
    report = {"arch": arch, "shipped": False, "lr": cfg.lr * LENGTH_LR_SCALE}
    with (work / f"adapt-{arch}.log").open("w") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            t0 = time.time()
            result = train_curriculum([arch], cfg, work, progress=False, stop_after=deadline - a.eval_s - time.time())
            Console(stderr=True).print(train_table(result))
            card = checkpoint.read_card(work / arch)
            report.update(steps=card["steps"], train_s=round(time.time() - t0, 1), wall_time_s=card["wall_time_s"],
                          final_loss=card["final_loss"])
            if card["steps"] < cfg.length_steps:
                return report
            model, card = checkpoint.load(work / arch)
            card["training_note"] = (f"fine-tuned by benchmarks/zoo/adapt.py: {cfg.length_steps} length-phase steps (PoSE "
                                     f"over {cfg.pose_span} positions, lr {cfg.lr * LENGTH_LR_SCALE:g}, warm-up {cfg.warmup}, "
                                     f"batch {cfg.batch} x {cfg.seq_len}) from the checkpoint whose card is init, on "
                                     f"{cfg.rows} rows: {cfg.lm_fraction:g} text ({cfg.copy_fraction:g} of it copy rows of "
                                     f"{cfg.copy_spans} spans), of the rest {cfg.drill_fraction:g} recall drill rows and the "
                                     f"others RULER rows of {', '.join(cfg.tasks)}; the same rows and steps for all 13, {a.jobs} at once"
                                     f"{', compiled' if cfg.compiled else ''}")
            checkpoint.save(ship / arch, model, card, int8=True)
            shutil.copy(work / arch / "loss.jsonl", ship / arch / "loss.jsonl")
            report["shipped"] = True
            spec = model_spec(arch, ship)
            n = a.samples   # the same samples for every architecture: a board refuses cells of different sample sets
            if n == 0:
                return report
            t0 = time.time()
            run_eval(spec, RunConfig(EVAL_TASKS, a.ctxs, n, out=Path(a.results), use_cache=False, batch_size=a.eval_batch),
                     command=["benchmarks/zoo/adapt.py", "evals run", ",".join(EVAL_TASKS), f"-n {n}", spec])
            report["eval_s"] = round(time.time() - t0, 1)
            if arch == DEFAULT and a.long_ctx and deadline - time.time() > a.long_s:
                t0 = time.time()
                run_eval(spec, RunConfig(resolve("ruler"), [a.long_ctx], 1, out=Path(a.results), use_cache=False),
                         command=["benchmarks/zoo/adapt.py", "evals run ruler -n 1", spec])
                report["long_s"] = round(time.time() - t0, 1)
        except Exception:
            traceback.print_exc()
            report["error"] = True
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    return report


def stale_inits(archs: list[str], init: Path, size: str) -> list[str]:
    """``ARCH: what differs`` for each architecture whose checkpoint in ``init`` has another config than
    ``registry.config(ARCH, size)`` (a default changed since it was trained), or is missing."""
    stale = []
    for arch in archs:
        if not (init / arch / "card.json").is_file():
            stale.append(f"{arch}: no checkpoint in {init}")
            continue
        if diff := checkpoint.config_diff(checkpoint.read_card(init / arch)["config"], registry.config(arch, size).to_dict()):
            stale.append(f"{arch}: " + ", ".join(diff))
    return stale


def bring_back(a: argparse.Namespace, reports: list[dict]) -> None:
    """Rewrite ``OUT/checkpoints-N.tar`` (shipped folders) and ``OUT/run.tar``: training and adapt logs, the
    packed results and ``adapt.json`` (per-architecture report and every scored cell), also left in ``WORK``."""
    out, work, ship, results = Path(a.out), Path(a.work), Path(a.ship), Path(a.results)
    shipped = sorted((r["arch"] for r in reports if r["shipped"]), key=registry.ARCHS.index)
    groups = [shipped[i:i + TAR_ARCHS] for i in range(0, len(shipped), TAR_ARCHS)]
    for i, group in enumerate(groups):
        with tarfile.open(out / f"checkpoints-{i}.tar.tmp", "w") as tar:
            for arch in group:
                tar.add(ship / arch, f"checkpoints/{arch}")
        os.replace(out / f"checkpoints-{i}.tar.tmp", out / f"checkpoints-{i}.tar")
    cells = {}
    for m in sorted(results.glob("*/*/*/metrics.json")):
        cell = json.loads(m.read_text())
        cells[f"{m.parts[-4]}/{m.parts[-3]}/{m.parts[-2]}"] = {"mean": cell.get("mean"), "n": cell.get("n")}
    if cells:
        pack(results, work / "zoo.samples.jsonl.gz")
    (work / "adapt.json").write_text(json.dumps({"reports": reports, "cells": cells}, indent=1))
    with tarfile.open(out / "run.tar.tmp", "w") as tar:
        for log in sorted(work.glob("adapt-*.log")):
            tar.add(log, f"logs/{log.name}")
        for loss in sorted(work.glob("*/loss.jsonl")):
            tar.add(loss, f"logs/{loss.parent.name}-loss.jsonl")
        for name in ("adapt.json", "zoo.samples.jsonl.gz"):
            if (work / name).is_file():
                tar.add(work / name, name)
    os.replace(out / "run.tar.tmp", out / "run.tar")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default=",".join(registry.ARCHS))
    p.add_argument("--steps", type=int, default=400, help="length-phase steps from the shipped weights")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate of those steps")
    p.add_argument("--lr-for", default="", help="other rates for some architectures, ARCH=LR comma-separated")
    p.add_argument("--tasks", default=",".join(MAKE_TASKS), help="the RULER rows' tasks (make.py's seven)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rows", type=int, default=8192, help="training rows generated")
    p.add_argument("--lm-fraction", type=float, default=0.4, help="share of rows that are text (make.py's: 0.4)")
    p.add_argument("--copy-fraction", type=float, default=1.0, help="share of the text rows that are copy rows (1.0)")
    p.add_argument("--copy-spans", default="essay", choices=["essay", "random"], help="what copy rows repeat (essay)")
    p.add_argument("--drill-fraction", type=float, default=0.25, help="share of the other rows that are drill rows (0.25)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--jobs", type=int, default=13)
    p.add_argument("--init", default=None, help="checkpoints to start from (default: a copy of the shipped ones)")
    p.add_argument("--ship", default=str(CHECKPOINTS), help="where the 8-bit copies go (ARCH/ subfolders)")
    p.add_argument("--ctxs", default="1024,2048,4096,8192")
    p.add_argument("--samples", type=int, default=10, help="samples a cell, the same for every architecture (0: ship unscored)")
    p.add_argument("--eval-batch", type=int, default=1)
    p.add_argument("--long-ctx", type=int, default=131072, help=f"{DEFAULT}'s ruler group at this length, 1 sample (0: none)")
    p.add_argument("--long-s", type=float, default=60, help="seconds that must be left to start that")
    p.add_argument("--eval-s", type=float, default=90, help="seconds kept for shipping and scoring after training")
    p.add_argument("--budget-s", type=float, default=420, help="the whole script's seconds")
    p.add_argument("--cpu-smoke", action="store_true", help="2 steps of 2 tiny architectures at 1K, from tiny weights made here")
    p.add_argument("--out", default="adapt-out", help="what comes back: checkpoints-N.tar and run.tar")
    p.add_argument("--work", default=None, help="training runs and the results folder (default: OUT/work)")
    a = p.parse_args()
    archs = a.arch.split(",")
    try:
        a.lr_for = {arch: float(lr) for arch, lr in (item.split("=") for item in a.lr_for.split(",") if item)}
    except ValueError:
        p.error(f"--lr-for takes ARCH=LR pairs, comma-separated; got {a.lr_for!r}")
    if unknown := (set(a.lr_for) | set(archs)) - set(registry.ARCHS):
        p.error(f"unknown architectures in --arch or --lr-for: {', '.join(sorted(unknown))}")
    tasks = tuple(a.tasks.split(","))
    if unknown := set(tasks) - set(TASKS):
        p.error(f"unknown tasks in --tasks: {', '.join(sorted(unknown))} (`evals tasks` lists them)")
    start = time.time()
    deadline = start + a.budget_s
    out = Path(a.out)
    a.work = a.work or str(out / "work")
    a.results = str(Path(a.work) / "results")
    out.mkdir(parents=True, exist_ok=True)
    Path(a.work).mkdir(exist_ok=True)
    a.ctxs = [int(c) for c in a.ctxs.split(",")]
    size = "small"
    if a.cpu_smoke:
        archs, size, a.steps, a.rows, a.batch, a.seq_len, a.ctxs = ["dense", DEFAULT], "tiny", 2, 24, 2, 1024, [1024]
        a.samples, a.long_ctx, a.ship = 1, 2048, str(out / "ship")
        a.init = str(out / "tiny-init")
        train_curriculum(archs, TrainConfig(size="tiny", tasks=tasks[:1], seq_len=1024, rows=4, steps=1, batch=1,
                                            warmup=1), Path(a.init), "cpu", progress=False)
    if a.init is None:
        a.init = str(Path(a.work) / "init")
        shutil.copytree(CHECKPOINTS, a.init, ignore=shutil.ignore_patterns("README.md"), dirs_exist_ok=True)
    if stale := stale_inits(archs, Path(a.init), size):
        p.error("these checkpoints are of another config than the registry's, so the trainer would refuse them: "
                + "; ".join(stale) + " (train them again from scratch, e.g. with make.py)")
    Path(a.ship).mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(size=size, tasks=tasks, seq_len=a.seq_len, rows=a.rows, steps=0, batch=a.batch,
                      lr=a.lr / LENGTH_LR_SCALE, warmup=a.warmup, lm_fraction=a.lm_fraction, copy_fraction=a.copy_fraction,
                      copy_spans=a.copy_spans, drill_fraction=a.drill_fraction,
                      length_steps=a.steps, save_every=10 ** 9, compiled=a.compile, init=Path(a.init))
    task_data(cfg, Path(a.work), Console(stderr=True))   # once, before the workers read it
    print(json.dumps({"data_s": round(time.time() - start, 1)}), flush=True)
    reports = []
    with ProcessPoolExecutor(a.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(adapt_one, arch, cfg, a, deadline) for arch in archs]
        for f in as_completed(futures):
            reports.append(f.result())
            print(json.dumps({"t": round(time.time() - start, 1), **reports[-1]}), flush=True)
            bring_back(a, reports)
    print(json.dumps({"wall_s": round(time.time() - start, 1)}), flush=True)
    cells = json.loads((Path(a.work) / "adapt.json").read_text())["cells"]
    for key, cell in sorted(cells.items()):
        print(f"{key:60s} {cell['mean']:.3f} n={cell['n']}")
    if any(r.get("error") or not r["shipped"] for r in reports):
        sys.exit("some architectures failed or did not finish: see adapt-ARCH.log in run.tar")


if __name__ == "__main__":
    main()
