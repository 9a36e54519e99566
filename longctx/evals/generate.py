"""The task catalog (``evals tasks``) and sample sets written to disk (``evals generate``).

Example: ``evals generate ruler --ctx 4k,128k --samples 100 --tokenizer hf:./tok --out data/``
writes ``data/<task>-<ctx>.jsonl`` (or, with ``--format hf``, a ``datasets`` dataset per file).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from longctx.evals.ctx import fmt_ctx
from longctx.evals.errors import EvalError
from longctx.tasks.cache import check_options, generate_samples
from longctx.tasks.registry import GROUPS, TASKS, data_vs_ruler, get_task
from longctx.tasks.tokenizers import load_tokenizer


def catalog() -> list[dict[str, Any]]:
    """Every task with its group, metric, answer budget, version, one-line description and, for RULER's
    tasks, how their default data differs from RULER's (templates and layout are RULER's) (``evals tasks``)."""
    group_of = {t: g for g, names in GROUPS.items() if g != "all" for t in names}
    return [{"name": n, "group": group_of.get(n, ""), "metric": t.metric, "answer_budget": t.answer_budget,
             "version": t.version, "description": t.description, "data_vs_ruler": data_vs_ruler(n)}
            for n, t in TASKS.items()]


def catalog_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="tasks (groups: " + ", ".join(GROUPS) + ")")
    for col in ("name", "group", "metric", "answer_budget", "version", "description", "data_vs_ruler"):
        table.add_column(col.replace("_", " "), overflow="fold")
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    return table


def generate_sets(names: list[str], ctxs: list[int], samples: int, tokenizer: str = "byte", seed: int = 0,
                  split: str = "eval", out: Path = Path("data"), fmt: str = "jsonl", options: dict[str, str] | None = None,
                  console: Console | None = None) -> list[Path]:
    """Write one sample set per task x ctx into ``out`` (``<task>-<ctx>.jsonl``, or a saved ``datasets``
    dataset with ``fmt="hf"``), token-exact for ``tokenizer``; returns the paths written."""
    if split not in ("eval", "train"):
        raise EvalError(f"--split must be eval or train, not {split!r}")
    if fmt not in ("jsonl", "hf"):
        raise EvalError(f"--format must be jsonl or hf, not {fmt!r}")
    tok = load_tokenizer(tokenizer)
    options = options or {}
    console = console or Console(stderr=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EvalError(f"cannot write to {out}: {e.strerror}") from None
    paths = []
    for name in names:
        for c in ctxs:
            with console.status(f"{name} @ {fmt_ctx(c)}"):
                rows = [s.to_dict() for s in generate_samples(name, c, samples, seed, tok, split=split, options=options)]
            path = out / f"{name}-{fmt_ctx(c)}"
            if fmt == "hf":
                from datasets import Dataset

                Dataset.from_list([{**r, "meta": json.dumps(r["meta"]), "messages": json.dumps(r["messages"])} for r in rows]).save_to_disk(str(path))
            else:
                path = path.with_suffix(".jsonl")
                path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            console.print(f"{path}: {len(rows)} samples, {max(r['prompt_tokens'] for r in rows)} prompt tokens at most")
            paths.append(path)
    return paths


def task_options(names: list[str], sets: list[str], haystack: str | None) -> dict[str, str]:
    """``--set KEY=VALUE`` pairs (and ``--haystack``) as task options, checked against the tasks."""
    options = {}
    for item in sets:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise EvalError(f"--set {item!r} is not KEY=VALUE")
        options[key.strip()] = value.strip()
    if haystack is not None:
        options["haystack"] = haystack
    check_options([get_task(n) for n in names], options)
    return options
