"""What ``evals merge`` prints: a merge plan (``evals/merge.py``) as a table per model, or as JSON.

Example: ``evals merge gpu0/results gpu1/results cpu/results --into results`` then
``evals leaderboard build --results results``.
"""
from __future__ import annotations

from rich.table import Table

from longctx.evals.merge import MergePlan


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
