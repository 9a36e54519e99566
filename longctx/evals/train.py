"""Train zoo architectures with the one shared recipe on task data (``evals train``, ``train_curriculum``).

Example: ``evals train --arch dense,mamba2 --seq-len 2048 --steps 3000 --out runs``, or from Python
``train_curriculum(["dense", "mamba2"], TrainConfig(seq_len=2048, steps=3000), Path("runs"))``. The data are
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

``--init DIR`` starts each architecture from ``DIR/ARCH`` (e.g. the shipped checkpoints); the card's
``init`` keeps that checkpoint's card (its own ``init`` chain included). With ``--steps 0 --length-steps M``
the task phase is skipped: M length-phase steps from ``DIR/ARCH``, a fine-tune that keeps the position skips.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from longctx.evals.errors import EvalError
from longctx.evals.train_copy import SPANS, copy_row
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


def build_copy_data(width: int, rows: int, seed: int, spans: str = "essay") -> TrainData:
    """``rows`` copy rows (``evals.train_copy``, spans of kind ``spans``) of ``width + 1`` bytes, every byte a
    target: the curriculum's first phase."""
    import torch

    from longctx.models.zoo.trainer import TrainData

    text = essay_bytes(seed)
    rng = random.Random(f"copy|{seed}")
    tokens = torch.stack([torch.frombuffer(bytearray(copy_row(spans, text, width + 1, rng)), dtype=torch.uint8)
                          for _ in range(rows)]).to(torch.int16)
    recipe = {"tasks": [], "copy_rows": rows, "copy_spans": spans, "lm_text": f"essay_haystack(seed={seed})", "seq_len": width,
              "split": "train", "seed": seed, "tokenizer": "byte"}
    return TrainData(tokens, torch.ones(tokens.shape, dtype=torch.float16), recipe)


def build_data(tasks: list[str], seq_len: int, rows: int, seed: int, answer_weight: float, lm_fraction: float,
               console: Console, copy_fraction: float = 0.0, drill_fraction: float = 0.0,
               copy_spans: str = "essay") -> TrainData:
    """``rows`` training rows of ``seq_len + 1`` tokens: task samples (padded, pad weight 0), recall
    drill rows (``drill_fraction`` of the non-text rows; ``evals.train_drill``), windows of plain
    essay text, and (``copy_fraction`` of those) copy rows with spans of kind ``copy_spans``
    (``evals.train_copy``)."""
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
            row = copy_row(copy_spans, text, width, rng)
        else:
            a = rng.randrange(0, len(text) - width)
            row = text[a:a + width]
        tokens[i] = torch.frombuffer(bytearray(row), dtype=torch.uint8).to(torch.int16)
        weights[i] = 1.0
        i += 1
    recipe = {"tasks": tasks, "samples_per_task": per_task, "drill_rows": n_drill, "lm_rows": n_lm, "copy_rows": n_copy,
              **({"copy_spans": copy_spans} if copy_spans != "essay" else {}), "lm_text": f"essay_haystack(seed={seed})",
              "seq_len": seq_len, "split": "train", "seed": seed, "tokenizer": "byte", "answer_weight": answer_weight}
    return TrainData(tokens, weights, recipe)


@dataclass(frozen=True)
class TrainConfig:
    """The one recipe every architecture is trained with (``evals train``'s options, same defaults)."""

    size: str = "small"                 # tiny (tests) or small (the shipped checkpoints)
    tasks: tuple[str, ...] = TRAIN_TASKS
    seq_len: int = 2048                 # training length in bytes (tokens)
    rows: int = 16384                   # training rows generated (the data pool)
    steps: int = 3000                   # task-phase optimizer steps
    batch: int = 16
    lr: float = 2e-3                    # peak learning rate (AdamW, warm-up then cosine)
    warmup: int = 100
    answer_weight: float = 20.0         # loss weight of answer tokens (text tokens weigh 1)
    lm_fraction: float = 0.2            # share of rows that are plain text
    copy_fraction: float = 0.0          # share of the text rows that repeat a span
    copy_spans: str = "essay"           # what copy rows repeat: essay text or random characters (evals.train_copy)
    drill_fraction: float = 0.0         # share of the task rows replaced by recall drill rows
    copy_len: int = 256                 # length of the copy phase's rows (bytes)
    copy_steps: int = 0                 # steps of the first phase on copy rows only (batch x2); 0 = none
    length_steps: int = 0               # steps of the last phase with PoSE position skips; 0 = none
    pose_span: int = 1 << 20            # that phase's RoPE positions spread over [0, pose_span)
    seed: int = 0
    save_every: int = 500
    compiled: bool = False              # the forward through torch.compile
    init: Path | None = None            # start each architecture from init/ARCH (e.g. the shipped checkpoints)


@dataclass
class TrainResult:
    """One row per phase trained: (name, its checkpoint card, the steps it was asked for); ``stopped``
    when ``stop_after`` ran out before the last phase finished."""

    phases: list[tuple[str, dict, int]] = field(default_factory=list)
    stopped: bool = False


def task_data(cfg: TrainConfig, out: Path, console: Console) -> TrainData:
    """The task phase's rows for ``cfg``, built once and cached in ``out`` under a key of what shapes them
    (build it before starting several training processes on the same ``out``)."""
    key = hashlib.sha256(json.dumps([list(cfg.tasks), cfg.seq_len, cfg.rows, cfg.seed, cfg.answer_weight, cfg.lm_fraction,
                                     cfg.copy_fraction, cfg.drill_fraction]
                                    + ([cfg.copy_spans] if cfg.copy_spans != "essay" else [])).encode()).hexdigest()[:12]
    return cached(out / f"data-{key}.safetensors",
                  lambda: build_data(list(cfg.tasks), cfg.seq_len, cfg.rows, cfg.seed, cfg.answer_weight, cfg.lm_fraction,
                                     console, cfg.copy_fraction, cfg.drill_fraction, cfg.copy_spans))


def train_curriculum(archs: list[str], cfg: TrainConfig = TrainConfig(), out: Path = Path("runs"),
                     device: str | None = None, progress: bool = True, stop_after: float | None = None,
                     console: Console | None = None) -> TrainResult:
    """Train each architecture (``models.zoo.registry.ARCHS`` names; ``["all"]`` for every one) with
    ``cfg`` into ``out/ARCH``: the copy phase, the task phase, the length phase (those with steps).
    Resumable: the same call continues where an interrupted or ``stop_after`` one stopped."""
    import torch

    from longctx.models.zoo import registry
    from longctx.models.zoo.trainer import Recipe
    from longctx.models.zoo.trainer import train as train_model

    console = console or Console(stderr=True)
    archs = list(registry.ARCHS) if list(archs) == ["all"] else list(archs)
    configs = [registry.config(a, cfg.size) for a in archs]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    recipe = Recipe(steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, warmup=min(cfg.warmup, cfg.steps), seed=cfg.seed,
                    save_every=cfg.save_every)
    length_recipe = replace(recipe, steps=cfg.length_steps, lr=cfg.lr * LENGTH_LR_SCALE,
                            warmup=min(cfg.warmup, cfg.length_steps), pose_span=cfg.pose_span)
    names = list(cfg.tasks)
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        raise EvalError(f"unknown training task(s) {', '.join(unknown) or '(none given)'}; `evals tasks` lists them")
    if cfg.copy_spans not in SPANS:
        raise EvalError(f"unknown --copy-spans {cfg.copy_spans!r}; choose one of {', '.join(SPANS)}")
    if cfg.drill_fraction and cfg.seq_len < 512:
        raise EvalError(f"--drill-fraction needs --seq-len of 512 bytes or more (a drill row holds questions and answers); got {cfg.seq_len}")
    data = task_data(cfg, out, console)
    copy_data = None
    if cfg.copy_steps:
        copy_recipe = replace(recipe, steps=cfg.copy_steps, batch=2 * cfg.batch, warmup=min(cfg.warmup, cfg.copy_steps))
        kind = "" if cfg.copy_spans == "essay" else f"-{cfg.copy_spans}"
        copy_data = cached(out / f"copy-{cfg.copy_len}-{cfg.rows * 2}-{cfg.seed}{kind}.safetensors",
                           lambda: build_copy_data(cfg.copy_len, 2 * cfg.rows, cfg.seed, cfg.copy_spans))
    stop_at = time.time() + stop_after if stop_after is not None else None
    result = TrainResult()
    compiled = cfg.compiled

    def finished(name: str, card: dict, steps: int) -> bool:
        result.phases.append((name, card, steps))
        return card["steps"] >= steps

    for mc in configs:
        init = cfg.init / mc.arch if cfg.init is not None else None
        if init is not None and not (init / "card.json").is_file():
            raise EvalError(f"--init {cfg.init}: no checkpoint of {mc.arch} there ({init / 'card.json'} is missing)")
        if copy_data is not None:
            done = train_model(mc, copy_recipe, copy_data, out / f"{mc.arch}-copy{cfg.copy_len}", device, progress,
                               init=init, stop_at=stop_at, compiled=compiled)
            if not finished(f"{mc.arch} (copy phase)", done, copy_recipe.steps):
                break
            init = out / f"{mc.arch}-copy{cfg.copy_len}"
        task_out = out / (f"{mc.arch}-task" if cfg.length_steps else mc.arch)
        if cfg.steps:
            card = train_model(mc, recipe, data, task_out, device, progress, init=init, stop_at=stop_at, compiled=compiled)
            if not finished(task_out.name, card, recipe.steps):
                break
        else:
            task_out = init
        if cfg.length_steps:
            card = train_model(mc, length_recipe, data, out / mc.arch, device, progress, init=task_out,
                               stop_at=stop_at, compiled=compiled)
            if not finished(f"{mc.arch} (length phase)", card, length_recipe.steps):
                break
    result.stopped = stop_at is not None and time.time() >= stop_at
    return result


def train_table(result: TrainResult) -> Table:
    """One row per phase: parameters, steps done of those asked, tokens seen, final loss, seconds."""
    table = Table("arch", "params", "steps", "tokens", "final loss", "seconds")
    for name, card, steps in result.phases:
        table.add_row(name, f"{card['parameters']:,}", f"{card['steps']}/{steps}", f"{card['tokens_seen']:,}",
                      str(card["final_loss"]), str(card["wall_time_s"]))
    return table
