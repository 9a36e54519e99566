"""How the zoo checkpoints are made on a GPU whose calls are time-limited.

``--plan`` times one training step of each architecture at the shipped size and prints what the
recipe would cost. Otherwise it runs ``evals train`` for every architecture with one recipe (the
short copy phase, then the task phase: same steps, batch, length and data for all), stopping
after ``--call-s`` seconds; running the same command again resumes where it stopped. Architectures
whose training is complete are scored with ``evals run`` on single-needle RULER at the training
length. Run from the repository root:

    python -m benchmarks.zoo.make --plan
    python -m benchmarks.zoo.make --call-s 500 --out runs --results results-zoo   # repeat until done
    python -m benchmarks.zoo.make --jobs 3 --compile --out runs --results results-zoo   # 3 processes at once
    python -m benchmarks.zoo.make --out runs --results results-zoo --ship models/checkpoints  # 8-bit copies
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.zoo.step_modes import step_ms
from longctx.models.zoo import checkpoint, registry


def train_all(train: list[str], archs: list[str], jobs: int, out: Path, call_s: float | None) -> int:
    """Run ``train`` (an ``evals train`` command without ``--arch``) for every architecture: all in one
    process when ``jobs`` is 1, else one process per architecture, ``jobs`` at once on the one GPU, each
    logging to ``OUT/train-ARCH.log`` and stopping ``call_s`` seconds after this call began. Returns the
    worst exit status."""
    start = time.time()
    if jobs <= 1:
        stop = [] if call_s is None else ["--stop-after", str(call_s)]
        return subprocess.run([*train, "--arch", ",".join(archs), *stop], check=False).returncode
    out.mkdir(parents=True, exist_ok=True)

    def one(arch: str) -> int:
        left = None if call_s is None else call_s - (time.time() - start)
        if left is not None and left <= 0:
            return 0
        stop = [] if left is None else ["--stop-after", str(round(left, 1))]
        with (out / f"train-{arch}.log").open("w") as log:
            return subprocess.run([*train, "--arch", arch, *stop], stdout=log, stderr=subprocess.STDOUT, check=False).returncode

    with ThreadPoolExecutor(jobs) as pool:
        return max(pool.map(one, archs))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default=",".join(registry.ARCHS))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rows", type=int, default=32768, help="training rows generated per phase")
    p.add_argument("--tasks", default="niah_single_1,niah_single_2,niah_single_3,niah_multikey_1,niah_multikey_2,"
                                      "niah_multiquery,niah_multivalue", help="training tasks (all fit in 1024 bytes)")
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--steps", type=int, default=7000, help="task-phase steps")
    p.add_argument("--data", default="--lm-fraction 0.4 --copy-fraction 1.0 --drill-fraction 0.25",
                   help="the task phase's data mix (evals train options)")
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
    start = time.time()
    run = [sys.executable, "-m", "longctx.evals"]
    train = [*run, "train", "--steps", str(a.steps), "--copy-steps", str(a.copy_steps),
             "--batch", str(a.batch), "--rows", str(a.rows), "--tasks", a.tasks, "--seq-len", str(a.seq_len), *a.data.split(),
             "--length-steps", str(a.length_steps), "--pose-span", str(a.pose_span),
             "--out", a.out, "--no-progress"]
    if a.compile:
        train.append("--compile")
    code = train_all(train, archs, a.jobs, Path(a.out), a.call_s)
    print(json.dumps({"train_wall_s": round(time.time() - start, 1), "archs": archs, "jobs": a.jobs}), flush=True)
    if code:
        sys.exit(code)
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
        subprocess.run([*run, "run", "niah_single_1,niah_single_2,niah_single_3", "--ctx", str(a.seq_len),
                        "--model", f"zoo:{arch}@{folder}", "--samples", str(a.samples), "-o", a.results], check=True)


if __name__ == "__main__":
    main()
