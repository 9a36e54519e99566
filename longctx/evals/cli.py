"""The ``evals`` command line: run, generate, tasks, bench, probe, plot, leaderboard, merge, train.

Each verb lives in its own module and registers itself on ``app``; errors a user can cause
are printed as one line and exit with status 2, never as a traceback.
"""
from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is plain: brackets such as zoo:ARCH[@CKPT] or [default: ...] stay as written
    help="Long-context evaluation suite: RULER, MRCR and recall-decay tasks over any model, at any context length.",
)
err = Console(stderr=True)


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
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)  # brackets in e stay
        sys.exit(2)
