"""The ``evals`` command line: run, generate, tasks, bench, probe, plot, leaderboard, results, merge, train.

Each verb lives in its own module and registers itself on ``app``; errors a user can cause
are printed as one line and exit with status 2, never as a traceback.
"""
from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Long-context evaluation suite: RULER, MRCR and recall-decay tasks over any model, at any context length.",
)
err = Console(stderr=True)
results_app = typer.Typer(no_args_is_help=True, help="Pack a results folder into one file (for a published board), or unpack it.")
app.add_typer(results_app, name="results")


@results_app.command("pack")
def results_pack(
    folder: Path = typer.Argument(..., help="results folder written by `evals run` (a root of model folders, or one)"),
    out: Path = typer.Option(..., "--out", "-o", help="the packed file, *.jsonl.gz (`evals leaderboard build --results` reads it)"),
) -> None:
    """Pack every file of FOLDER into one gzipped JSON-lines file: one row per sample record or JSON file."""
    from longctx.evals.results_pack import pack

    print(f"{out}: {pack(folder, out)} rows")


@results_app.command("unpack")
def results_unpack(
    file: Path = typer.Argument(..., help="a file written by `evals results pack`"),
    out: Path = typer.Option(..., "--out", "-o", help="folder to write the results into (none of its files may exist yet)"),
) -> None:
    """Write the files of a packed results file back into a folder, byte for byte."""
    from longctx.evals.results_pack import unpack

    print(f"{out}: {unpack(file, out)} files")


def _register() -> None:
    # one line per verb module; each defines its command(s) on `app`
    from longctx.evals import bench, generate_cmd, leaderboard, merge_cmd, plot, probe, run_cmd, train  # noqa: F401


def user_errors() -> tuple[type[Exception], ...]:
    from longctx.evals.errors import EvalError
    from longctx.models.errors import ModelError
    from longctx.tasks.errors import TaskError

    return (EvalError, ModelError, TaskError)


def main() -> None:
    _register()
    try:
        app()  # usage errors (unknown option, bad value) are click's: it prints them and exits 2
    except user_errors() as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
