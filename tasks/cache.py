"""Generated sample sets cached on disk, keyed by everything that defines them.

``generate_samples`` is the one entry point the runner and ``evals generate`` use. The cache lives
in ``$EVALS_CACHE`` (default ``~/.cache/longctx-evals/tasks``); a set is written to a temporary
file and renamed, so a crash never leaves a half set that a later run would trust.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tasks.haystack import load_haystack
from tasks.registry import get_task
from tasks.sample import Sample
from tasks.task import Split, Task
from tasks.tokenizers import Tokenizer


def cache_dir() -> Path:
    return Path(os.environ.get("EVALS_CACHE", Path.home() / ".cache" / "longctx-evals" / "tasks"))


def with_haystack(task: Task, haystack: str | None) -> Task:
    """``task`` reading its filler from ``haystack`` (noise, essay or a path); tasks without a
    haystack (e.g. MRCR, whose haystack is the conversation) are returned unchanged."""
    if haystack is None or not hasattr(getattr(task, "config", None), "haystack"):
        return task
    return task.replace(haystack=haystack)


def set_key(task: Task, ctx: int, n: int, seed: int, tokenizer: Tokenizer, split: Split, overhead: int,
            turn_overhead: int | None = None) -> str:
    """Everything that defines a sample set; a file haystack enters by its content digest."""
    config = getattr(task, "config", None)
    ident = dict(task=task.name, version=task.version, config=repr(config), ctx=ctx, n=n,
                 seed=seed, tokenizer=tokenizer.name, split=split, overhead=overhead)
    if getattr(config, "haystack", None) not in (None, "noise", "essay", "needle"):
        ident["haystack"] = load_haystack(config.haystack).name
    if getattr(task, "multi_turn", False):
        ident["turn_overhead"] = turn_overhead
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def generate_samples(task: str, ctx: int, n: int, seed: int, tokenizer: Tokenizer, split: Split = "eval",
                     overhead: int = 0, turn_overhead: int | None = None, haystack: str | None = None,
                     use_cache: bool = True) -> list[Sample]:
    """The ``n`` samples of ``task`` at ``ctx``; from the cache when the same set was made before.

    ``overhead``: tokens the model's format adds around a one-message prompt; ``turn_overhead``:
    what each further message costs, for multi-turn tasks (MRCR), which alone take it. ``haystack``:
    the filler of tasks that have one (``noise``, ``essay`` or a text file, folder or saved dataset)."""
    t = with_haystack(get_task(task), haystack)
    path = cache_dir() / f"{task}-{ctx}-{set_key(t, ctx, n, seed, tokenizer, split, overhead, turn_overhead)}.jsonl"
    if use_cache and path.is_file():
        with path.open(encoding="utf-8") as f:
            return [Sample.from_dict(json.loads(line)) for line in f]
    extra = {"turn_overhead": turn_overhead} if getattr(t, "multi_turn", False) else {}
    samples = list(t.generate(ctx, n, seed, tokenizer, split=split, overhead=overhead, **extra))
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("w", encoding="utf-8") as f:
            for s in samples:
                f.write(json.dumps(s.to_dict(), ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    return samples
