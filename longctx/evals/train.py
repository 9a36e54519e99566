"""``evals train``: train zoo architectures with the one shared recipe on task data.

Example: ``evals train --arch dense,mamba2 --seq-len 2048 --steps 3000 --out runs``. The data are
RULER-style samples from ``tasks/`` (training vocabulary split, training seeds; never the
evaluation split) at the training length with the byte tokenizer, rendered exactly as
``zoo:`` models see prompts at evaluation, plus rows of plain essay text for language modelling.
The loss counts answer tokens ``--answer-weight`` times. Rerunning the same command resumes.

``--copy-steps N`` puts a first phase before that: N steps on short rows of essay text with a span
repeated (``--copy-len`` bytes, twice the batch), into ``OUT/ARCH-copyLEN``; the task phase starts
from its weights. From scratch at 1-2K bytes the models/checkpoints runs never learned to copy a
needle; after a short copy phase they do (models/checkpoints/README.md has the numbers).

``--length-steps M`` adds a last phase: M more steps on the task data at a quarter of the learning
rate with PoSE position skips over ``--pose-span`` positions, from the task phase's weights (then in
``OUT/ARCH-task``) into ``OUT/ARCH``. Rotary models so meet needle distances far beyond the rows'
length. Skips from the first step kept a dense model from ever learning retrieval (7000 steps).
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from longctx.evals.cli import app
from longctx.evals.errors import EvalError
from longctx.evals.train_drill import drill_row
from longctx.models.base import Request
from longctx.tasks.cache import generate_samples
from longctx.tasks.haystack import essay_haystack
from longctx.tasks.registry import TASKS
from longctx.tasks.sample import Sample
from longctx.tasks.tokenizers import ByteTokenizer

if TYPE_CHECKING:  # torch and the zoo are imported when the command runs, not when the CLI starts
    from longctx.models.zoo.trainer import TrainData

ARCHS = "dense, swa, linear, mamba2, hybrid, hybrid_ssa, dsa, ssa, hyper, mamba1, performer, s4, hyena"  # models.zoo.registry.ARCHS

# the default task mix (RULER needle and variable-tracking tasks, the decay probe)
TRAIN_TASKS = ("niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
               "niah_multikey_3", "niah_multivalue", "niah_multiquery", "vt", "decay_distance")
# prompt room left for BOS and the newline before the answer prefix (the zoo's plain-template tokens);
# the task's answer budget already holds the byte-level answer
OVERHEAD = 2
LENGTH_LR_SCALE = 0.25   # the length phase adapts a model that already retrieves: a gentler learning rate


def answer_text(sample: Sample) -> str:
    """The completion a zoo model is taught to produce after the prefilled answer prefix."""
    lead = "" if not sample.answer_prefix or sample.answer_prefix[-1].isspace() else " "
    return lead + ", ".join(sample.answers) + "."


def sample_row(sample: Sample, answer_weight: float) -> tuple[list[int], list[float]]:
    """Token ids of BOS + prompt + answer + EOS and each token's loss weight as a target."""
    from longctx.models.zoo.model import encode
    from longctx.models.zoo.trunk import EOS

    prompt = encode(Request(messages=sample.chat(), prefill=sample.answer_prefix or None))
    answer = [*answer_text(sample).encode("utf-8"), EOS]
    return prompt + answer, [1.0] * len(prompt) + [answer_weight] * len(answer)


def essay_bytes(seed: int) -> bytes:
    """The generated essay text (``tasks.haystack.essay_haystack``) as UTF-8 bytes."""
    return "".join(essay_haystack(seed).units).encode("utf-8")


def cached(path: Path, build: Callable[[], TrainData]) -> TrainData:
    """The training data saved at ``path``, or ``build()`` saved there first."""
    from longctx.models.zoo.trainer import TrainData

    if path.is_file():
        return TrainData.load(path)
    data = build()
    data.save(path)
    return data


def copy_row(text: bytes, width: int, rng: random.Random) -> bytes:
    """A window of essay text in which a span reappears later: ``A B A C`` (A of 16 to width/2 bytes).
    Predicting the repeat needs the look-up-and-copy circuit that retrieval needs, and it trains it on
    hundreds of tokens a row instead of an answer's few."""
    span = rng.randrange(16, width // 2)
    a, b, c = (rng.randrange(0, len(text) - width) for _ in range(3))
    gap = rng.randrange(0, width - 2 * span)
    row = text[a:a + span] + text[b:b + gap] + text[a:a + span] + text[c:c + width]
    return row[:width]


def build_copy_data(width: int, rows: int, seed: int) -> TrainData:
    """``rows`` copy rows of ``width + 1`` bytes, every byte a target: the curriculum's first phase."""
    import torch

    from longctx.models.zoo.trainer import TrainData

    text = essay_bytes(seed)
    rng = random.Random(f"copy|{seed}")
    tokens = torch.stack([torch.frombuffer(bytearray(copy_row(text, width + 1, rng)), dtype=torch.uint8)
                          for _ in range(rows)]).to(torch.int16)
    recipe = {"tasks": [], "copy_rows": rows, "lm_text": f"essay_haystack(seed={seed})", "seq_len": width,
              "split": "train", "seed": seed, "tokenizer": "byte"}
    return TrainData(tokens, torch.ones(tokens.shape, dtype=torch.float16), recipe)


def build_data(tasks: list[str], seq_len: int, rows: int, seed: int, answer_weight: float, lm_fraction: float,
               console: Console, copy_fraction: float = 0.0, drill_fraction: float = 0.0) -> TrainData:
    """``rows`` training rows of ``seq_len + 1`` tokens: task samples (padded, pad weight 0), recall
    drill rows (``drill_fraction`` of the non-text rows; ``evals.train_drill``), windows of plain
    essay text, and (``copy_fraction`` of those) essay windows with a repeated span."""
    import torch

    from longctx.models.zoo.trainer import TrainData
    from longctx.models.zoo.trunk import PAD

    width = seq_len + 1
    n_lm = int(rows * lm_fraction)
    n_drill = int((rows - n_lm) * drill_fraction)
    per_task = -(-(rows - n_lm - n_drill) // len(tasks))
    tokens = torch.full((per_task * len(tasks) + n_drill + n_lm, width), PAD, dtype=torch.int16)
    weights = torch.zeros(tokens.shape, dtype=torch.float16)
    i = 0
    with console.status("generating training samples") as status:
        for name in tasks:
            status.update(f"generating {per_task} training samples of {name} at {seq_len} bytes")
            for s in generate_samples(name, seq_len, per_task, seed, ByteTokenizer(), split="train", overhead=OVERHEAD):
                ids, w = sample_row(s, answer_weight)
                n = min(len(ids), width)
                tokens[i, :n] = torch.tensor(ids[:n], dtype=torch.int16)
                weights[i, :n] = torch.tensor(w[:n], dtype=torch.float16)
                i += 1
    drill = random.Random(f"drill|{seed}")
    for _ in range(n_drill):
        ids, w = drill_row(width, drill, answer_weight)
        tokens[i], weights[i] = torch.tensor(ids, dtype=torch.int16), torch.tensor(w, dtype=torch.float16)
        i += 1
    text = essay_bytes(seed)
    rng = random.Random(seed)
    n_copy = int(n_lm * copy_fraction)
    for j in range(n_lm):
        if j < n_copy:
            row = copy_row(text, width, rng)
        else:
            a = rng.randrange(0, len(text) - width)
            row = text[a:a + width]
        tokens[i] = torch.frombuffer(bytearray(row), dtype=torch.uint8).to(torch.int16)
        weights[i] = 1.0
        i += 1
    recipe = {"tasks": tasks, "samples_per_task": per_task, "drill_rows": n_drill, "lm_rows": n_lm, "copy_rows": n_copy, "lm_text": f"essay_haystack(seed={seed})",
              "seq_len": seq_len, "split": "train", "seed": seed, "tokenizer": "byte", "answer_weight": answer_weight}
    return TrainData(tokens, weights, recipe)


@app.command()
def train(
    arch: str = typer.Option("dense", help=f"Architectures, comma-separated, or 'all' ({ARCHS})."),
    size: str = typer.Option("small", help="Model size: tiny (tests) or small (the shipped checkpoints)."),
    tasks: str = typer.Option(",".join(TRAIN_TASKS), help="Training tasks from tasks/, comma-separated."),
    seq_len: int = typer.Option(2048, min=64, help="Training length in bytes (tokens)."),
    rows: int = typer.Option(16384, min=1, help="Training rows generated (the data pool; repeated if steps need more)."),
    steps: int = typer.Option(3000, min=1, help="Optimizer steps (same for every architecture)."),
    batch: int = typer.Option(16, min=1, help="Rows per step."),
    lr: float = typer.Option(2e-3, help="Peak learning rate (AdamW, warm-up then cosine)."),
    warmup: int = typer.Option(100, min=0, help="Warm-up steps."),
    answer_weight: float = typer.Option(20.0, help="Loss weight of answer tokens (text tokens weigh 1)."),
    lm_fraction: float = typer.Option(0.2, min=0.0, max=0.9, help="Share of rows that are plain text."),
    copy_fraction: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of the text rows that repeat a span."),
    drill_fraction: float = typer.Option(0.0, min=0.0, max=0.9, help="Share of the task rows replaced by recall "
                                                                     "drill rows (many needles, several questions; >= 512 bytes)."),
    copy_len: int = typer.Option(256, min=64, help="Length of the first phase's copy rows (bytes)."),
    copy_steps: int = typer.Option(0, min=0, help="Steps of a first phase on short copy rows only (batch x2), "
                                                  "before the task phase; 0 = none."),
    length_steps: int = typer.Option(0, min=0, help="Steps of a last phase on the task data with PoSE position skips "
                                                    "(a quarter of the learning rate), after the task phase; 0 = none."),
    pose_span: int = typer.Option(1 << 20, min=2, help="The last phase's RoPE positions spread over [0, N): rotary "
                                                       "models see distances up to N while training at --seq-len."),
    seed: int = typer.Option(0, help="Seed of data and initialization."),
    save_every: int = typer.Option(500, min=1, help="Checkpoint every N steps (resume point)."),
    compiled: bool = typer.Option(False, "--compile", help="Run the forward through torch.compile (same loss, "
                                                          "fewer launches; compiles once per phase)."),
    stop_after: float | None = typer.Option(None, min=0, help="Save and stop after this many seconds; "
                                                               "the same command resumes (for time-limited machines)."),
    out: Path = typer.Option(Path("runs"), "--out", "-o", help="Run folder; one subfolder per architecture."),
    device: str | None = typer.Option(None, help="cuda or cpu (default: cuda when present)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train zoo architectures with one shared recipe; resumable; loss logged to OUT/ARCH/loss.jsonl."""
    import torch

    from longctx.models.zoo import registry
    from longctx.models.zoo.trainer import Recipe
    from longctx.models.zoo.trainer import train as train_model

    console = Console(stderr=True)
    archs = list(registry.ARCHS) if arch == "all" else [a.strip() for a in arch.split(",") if a.strip()]
    configs = [registry.config(a, size) for a in archs]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    recipe = Recipe(steps=steps, batch=batch, lr=lr, warmup=min(warmup, steps), seed=seed, save_every=save_every)
    length_recipe = replace(recipe, steps=length_steps, lr=lr * LENGTH_LR_SCALE, warmup=min(warmup, length_steps),
                            pose_span=pose_span)
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        raise EvalError(f"unknown training task(s) {', '.join(unknown) or '(none given)'}; `evals tasks` lists them")
    if drill_fraction and seq_len < 512:
        raise EvalError(f"--drill-fraction needs --seq-len of 512 bytes or more (a drill row holds questions and answers); got {seq_len}")
    key = hashlib.sha256(json.dumps([names, seq_len, rows, seed, answer_weight, lm_fraction, copy_fraction,
                                     drill_fraction]).encode()).hexdigest()[:12]
    data = cached(out / f"data-{key}.safetensors",
                  lambda: build_data(names, seq_len, rows, seed, answer_weight, lm_fraction, console, copy_fraction,
                                     drill_fraction))
    copy_data = None
    if copy_steps:
        copy_recipe = replace(recipe, steps=copy_steps, batch=2 * batch, warmup=min(warmup, copy_steps))
        copy_data = cached(out / f"copy-{copy_len}-{rows * 2}-{seed}.safetensors",
                           lambda: build_copy_data(copy_len, 2 * rows, seed))
    stop_at = time.time() + stop_after if stop_after is not None else None
    table = Table("arch", "params", "steps", "tokens", "final loss", "seconds")

    def finished(name: str, card: dict, steps: int) -> bool:
        table.add_row(name, f"{card['parameters']:,}", f"{card['steps']}/{steps}", f"{card['tokens_seen']:,}",
                      str(card["final_loss"]), str(card["wall_time_s"]))
        return card["steps"] >= steps

    for cfg in configs:
        init = None
        if copy_data is not None:
            init = out / f"{cfg.arch}-copy{copy_len}"
            done = train_model(cfg, copy_recipe, copy_data, init, device, progress, stop_at=stop_at, compiled=compiled)
            if not finished(f"{cfg.arch} (copy phase)", done, copy_recipe.steps):
                break
        task_out = out / (f"{cfg.arch}-task" if length_steps else cfg.arch)
        card = train_model(cfg, recipe, data, task_out, device, progress, init=init, stop_at=stop_at, compiled=compiled)
        if not finished(task_out.name, card, recipe.steps):
            break
        if length_steps:
            card = train_model(cfg, length_recipe, data, out / cfg.arch, device, progress, init=task_out,
                               stop_at=stop_at, compiled=compiled)
            if not finished(f"{cfg.arch} (length phase)", card, length_recipe.steps):
                break
    console.print(table)
    if stop_at is not None and time.time() >= stop_at:
        console.print("stopped by --stop-after; run the same command again to resume")
