"""The table printed at the end of `evals run`: the RULER average row covers exactly the RULER tasks
of the table (and appears only for two or more), and one sample shows no standard error."""
from __future__ import annotations

from rich.console import Console

from longctx.evals.summary import summary_table


def _text(summary: dict, ctxs: list[int], tasks: list[str]) -> str:
    console = Console(width=200, record=True)
    console.print(summary_table(summary, ctxs, tasks))
    return console.export_text()


def _cell(mean: float, n: int = 4, stderr: float = 0.1) -> dict:
    return {"mean": mean, "stderr": stderr, "n": n}


SUMMARY = {"model": "m", "tasks": {
    "niah_single_1": {"1024": _cell(1.0), "2048": _cell(0.5)},
    "vt": {"1024": _cell(0.5)},
    "cwe": {"1024": _cell(0.0), "2048": _cell(0.0)},  # in the folder, not in this run's table
    "decay_distance": {"1024": _cell(0.2)},
}, "ruler_average": {"1024": 0.5, "2048": 0.25}}


def test_ruler_average_covers_the_tables_tasks_only():
    text = _text(SUMMARY, [1024, 2048], ["niah_single_1", "vt", "decay_distance"])
    row = next(line for line in text.splitlines() if "RULER average" in line)
    assert "RULER average (2 tasks)" in row and "75.00" in row  # (100 + 50) / 2, not the folder's 50.0 over three
    assert "50.00 (1 of 2)" in row  # at 2K only niah_single_1 was scored


def test_no_ruler_average_over_one_task():
    text = _text(SUMMARY, [1024], ["niah_single_1", "decay_distance"])
    assert "RULER average" not in text


def test_one_sample_has_no_standard_error():
    summary = {"model": "m", "tasks": {"vt": {"1024": _cell(1.0, n=1, stderr=0.0)}}}
    row = next(line for line in _text(summary, [1024], ["vt"]).splitlines() if "vt" in line)
    assert "100.00 (n=1)" in row and "±" not in row
