"""``evals merge SRC... --into DIR``: one results folder from the folders several machines wrote.

Example: ``evals merge gpu0/results gpu1/results cpu/results --into results`` then
``evals leaderboard build --results results``. The logic is in ``evals/merge.py``.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from longctx.evals.cli import app
from longctx.evals.errors import EvalError
from longctx.evals.merge import MergePlan, apply_merge, plan_merge


HELP = (
    "Merge results folders into DIR, cell by cell (<model>/<task>/<ctx>), never overwriting anything.\n\n"
    "A cell is copied (its metrics.json and samples.jsonl, so that `evals run --out DIR` skips it and "
    "`evals leaderboard build` and `evals plot` read it) only when its metrics.json says complete; partial "
    "cells are counted and skipped.\n\n"
    "A cell DIR already has is left as it is: the same sample-set hash counts as 'same'; a different one "
    "(or an unfinished cell in DIR) is a conflict, printed with both files. Conflicts do not stop the "
    "merge: every other cell is merged, each conflict is printed, and the command exits 2. Between two "
    "sources, the earlier SRC's cell is kept.\n\n"
    "Each model's manifest.json is kept as manifest-TAG.json (refused, as a conflict, if a different file "
    "has that name) and becomes DIR's manifest.json if DIR has none; runs.jsonl lines are appended unless "
    "already there, so merging the same source twice changes nothing. summary.json is rebuilt for every "
    "model that gained cells. Leaderboard JSON files are merged by `evals leaderboard merge`."
)


@app.command(help=HELP)
def merge(
    sources: list[Path] = typer.Argument(..., metavar="SRC", help="Results folders written by `evals run --out` (one per machine or lane), merged in this order."),
    into: Path = typer.Option(..., "--into", metavar="DIR", help="The merged results folder (created if missing)."),
    tags: list[str] = typer.Option([], "--tag", help="Name of each source's manifest copy, manifest-TAG.json: one per SRC, in order "
                                   "(default: the source folder's name and a hash of its absolute path)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be merged; write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Merge SRC folders into DIR; exit 2 after merging the rest if any cell or manifest conflicts."""
    plan = plan_merge(sources, into, tags or None)
    if not dry_run:
        apply_merge(plan)
    Console(stderr=as_json).print(report_table(plan, dry_run))
    err = Console(stderr=True)
    for w in plan.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    for c in plan.conflicts:
        err.print(f"[red]conflict:[/] {c}", highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps(report(plan, dry_run), indent=2))
    if plan.conflicts:
        done = "would be merged" if dry_run else "was merged"
        raise EvalError(f"{len(plan.conflicts)} conflict(s) above were not merged (everything else {done}): rerun one "
                        "side with the other's --seed and --samples or merge it into another folder; for a manifest, "
                        "pass another --tag")


def report_table(plan: MergePlan, dry_run: bool) -> Table:
    """One row per model: cells added, same, in conflict, skipped as incomplete; manifests and runs lines written."""
    verb = "would add" if dry_run else "added"
    table = Table(title=f"merge into {plan.into}" + (" (dry run: nothing written)" if dry_run else ""),
                  caption="incomplete: partial cells, skipped; manifests, runs lines: written to DIR")
    table.add_column("model", no_wrap=True)
    for name in (verb, "same", "conflict", "incomplete", "manifests", "runs lines"):
        table.add_column(name, justify="right")
    for mp in plan.models.values():
        table.add_row(mp.name, str(len(mp.added)), str(mp.same), _red(len(mp.conflicts)), str(len(mp.incomplete)),
                      str(len(mp.manifests)), str(len(mp.runs_lines)))
    return table


def report(plan: MergePlan, dry_run: bool) -> dict:
    return {"into": str(plan.into), "dry_run": dry_run, "warnings": plan.warnings, "models": {
        mp.name: {"added": [f"{dst.parent.name}/{dst.name}" for _, dst in mp.added], "same": mp.same,
                  "conflicts": mp.conflicts, "incomplete": [str(p) for p in mp.incomplete],
                  "manifests": [name for _, name in mp.manifests], "runs_lines": len(mp.runs_lines)}
        for mp in plan.models.values()}}


def _red(n: int) -> str:
    return f"[bold red]{n}[/]" if n else "0"
