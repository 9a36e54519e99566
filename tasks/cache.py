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

from tasks.registry import get_task
from tasks.sample import Sample
from tasks.task import Split
from tasks.tokenizers import Tokenizer


def cache_dir() -> Path:
    return Path(os.environ.get("EVALS_CACHE", Path.home() / ".cache" / "longctx-evals" / "tasks"))


def set_key(task: str, ctx: int, n: int, seed: int, tokenizer: Tokenizer, split: Split, overhead: int,
            turn_overhead: int | None = None) -> str:
    t = get_task(task)
    ident = dict(task=task, version=t.version, config=repr(getattr(t, "config", None)), ctx=ctx, n=n,
                 seed=seed, tokenizer=tokenizer.name, split=split, overhead=overhead)
    if getattr(t, "multi_turn", False):
        ident["turn_overhead"] = turn_overhead
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def generate_samples(task: str, ctx: int, n: int, seed: int, tokenizer: Tokenizer, split: Split = "eval",
                     overhead: int = 0, turn_overhead: int | None = None, use_cache: bool = True) -> list[Sample]:
    """The ``n`` samples of ``task`` at ``ctx``; from the cache when the same set was made before.

    ``overhead``: tokens the model's format adds around a one-message prompt; ``turn_overhead``:
    what each further message costs, for multi-turn tasks (MRCR), which alone take it."""
    path = cache_dir() / f"{task}-{ctx}-{set_key(task, ctx, n, seed, tokenizer, split, overhead, turn_overhead)}.jsonl"
    if use_cache and path.is_file():
        with path.open(encoding="utf-8") as f:
            return [Sample.from_dict(json.loads(line)) for line in f]
    t = get_task(task)
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
