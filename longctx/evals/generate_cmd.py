"""``evals tasks`` (the catalog) and ``evals generate`` (write sample sets to disk).

Example: ``evals generate ruler --ctx 4k,128k --samples 100 --tokenizer hf:./tok --out data/``
writes ``data/<task>-<ctx>.jsonl`` (or, with ``--format hf``, a ``datasets`` dataset per file).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from longctx.evals.cli import app
from longctx.evals.ctx import fmt_ctx, parse_ctx
from longctx.evals.errors import EvalError
from longctx.tasks.cache import check_options, generate_samples
from longctx.tasks.registry import GROUPS, TASKS, data_vs_ruler, get_task, resolve
from longctx.tasks.tokenizers import load_tokenizer


@app.command("tasks")
def list_tasks(as_json: bool = typer.Option(False, "--json", help="Print the catalog as JSON.")) -> None:
    """List every task with its group, metric, answer budget, a one-line description and, for RULER's
    tasks, how their default data differs from RULER's (templates and layout are RULER's)."""
    group_of = {t: g for g, names in GROUPS.items() if g != "all" for t in names}
    rows = [{"name": n, "group": group_of.get(n, ""), "metric": t.metric, "answer_budget": t.answer_budget,
             "version": t.version, "description": t.description, "data_vs_ruler": data_vs_ruler(n)}
            for n, t in TASKS.items()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="tasks (groups: " + ", ".join(GROUPS) + ")")
    for col in ("name", "group", "metric", "answer_budget", "version", "description", "data_vs_ruler"):
        table.add_column(col.replace("_", " "), overflow="fold")
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    Console().print(table)


@app.command()
def generate(
    tasks: str = typer.Argument(..., help="A task, a group (ruler, mrcr, decay, all) or a comma list."),
    ctx: str = typer.Option("4k", "--ctx", help="Context lengths: 4k, 128k, 1m, lists or power-of-two ranges (4k-128k)."),
    samples: int = typer.Option(100, "--samples", "-n", min=1),
    tokenizer: str = typer.Option("byte", help="byte | hf:PATH | tiktoken:NAME"),
    seed: int = typer.Option(0),
    split: str = typer.Option("eval", help="Vocabulary split of keys and values: eval (default) or train."),
    out: Path = typer.Option(Path("data"), "--out", "-o"),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl, or hf for a datasets dataset saved to disk."),
    haystack: Optional[str] = typer.Option(None, help="Filler for tasks that have one: noise, essay, or your text file, folder of .txt or saved datasets dataset."),
    sets: list[str] = typer.Option([], "--set", help="KEY=VALUE: a task option for the tasks that have it, e.g. depth=50, source=squad.json, path=mrcr/ (mrcr_official). Repeatable."),
) -> None:
    """Generate sample sets (one file per task x ctx), token-exact for TOKENIZER."""
    if split not in ("eval", "train"):
        raise EvalError(f"--split must be eval or train, not {split!r}")
    if fmt not in ("jsonl", "hf"):
        raise EvalError(f"--format must be jsonl or hf, not {fmt!r}")
    names, ctxs, tok = resolve(tasks), parse_ctx(ctx), load_tokenizer(tokenizer)
    options = task_options(names, sets, haystack)
    console = Console(stderr=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EvalError(f"cannot write to {out}: {e.strerror}") from None
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
