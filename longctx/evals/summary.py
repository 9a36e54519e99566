"""The model-level summary: every task x ctx cell found under a model's results folder, the
RULER-style average per ctx, and the table printed at the end of a run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from longctx.evals.aggregate import RULER_AVERAGE_METHOD, ruler_average
from longctx.evals.ctx import fmt_ctx
from longctx.evals.store import write_json_atomic
from longctx.tasks.registry import GROUPS


def collect(model_dir: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """``{task: {ctx: metrics}}`` from every ``metrics.json`` below ``model_dir``."""
    cells: dict[str, dict[int, dict[str, Any]]] = {}
    for f in sorted(model_dir.glob("*/*/metrics.json")):
        m = json.loads(f.read_text(encoding="utf-8"))
        cells.setdefault(m["task"], {})[int(m["ctx"])] = m
    return cells


def build_summary(model_dir: Path, model_spec: str) -> dict[str, Any]:
    cells = collect(model_dir)
    avg, used = ruler_average(cells, GROUPS["ruler"])
    summary = {
        "model": model_spec,
        "tasks": {t: {str(c): {k: m[k] for k in ("mean", "stderr", "n")} for c, m in sorted(by.items())}
                  for t, by in cells.items()},
        "ruler_average": {str(c): v for c, v in avg.items()},
        "ruler_average_tasks": {str(c): v for c, v in used.items()},
        "average_method": RULER_AVERAGE_METHOD,
    }
    write_json_atomic(model_dir / "summary.json", summary)
    return summary


def summary_table(summary: dict[str, Any], ctxs: list[int], tasks: list[str]) -> Table:
    """Tasks x ctx, scores in percent to two decimals (as RULER reports them) with their standard error; then, when the table holds two or more
    RULER tasks, their average per ctx (over exactly those tasks; a length where some of them are missing
    says how many it covers)."""
    table = Table(title=f"{summary['model']}: score (%) ± standard error, n samples per cell")
    table.add_column("task")
    for c in ctxs:
        table.add_column(fmt_ctx(c), justify="right")
    for t in tasks:
        row = summary["tasks"].get(t, {})
        table.add_row(t, *(_cell(row.get(str(c))) for c in ctxs))
    ruler = [t for t in tasks if t in GROUPS["ruler"]]
    if len(ruler) > 1:
        per_task = {t: {int(c): m for c, m in summary["tasks"].get(t, {}).items() if m.get("n")} for t in ruler}
        avg, used = ruler_average(per_task, ruler)
        table.add_row(f"[bold]RULER average ({len(ruler)} tasks)[/]",
                      *(_average_cell(avg.get(c), len(used.get(c, [])), len(ruler)) for c in ctxs), end_section=True)
    return table


def table_has_ruler_average(tasks: list[str]) -> bool:
    return sum(t in GROUPS["ruler"] for t in tasks) > 1


def _average_cell(value: float | None, covered: int, of: int) -> str:
    if value is None:
        return "-"
    return f"[bold]{100 * value:.2f}[/]" + ("" if covered == of else f" ({covered} of {of})")


def _cell(m: dict[str, Any] | None) -> str:
    """Mean ± standard error (n); one sample has no standard error, so it shows none."""
    if not m or not m["n"]:
        return "-"
    if m["n"] == 1:
        return f"{100 * m['mean']:.2f} (n=1)"
    return f"{100 * m['mean']:.2f} ± {100 * m['stderr']:.2f} (n={m['n']})"
