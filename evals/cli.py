"""The ``evals`` command line: run, generate, tasks, bench, probe, plot, leaderboard, train.

Each verb lives in its own module and registers itself on ``app``; errors a user can cause
are printed as one line and exit with status 2, never as a traceback.
"""
from __future__ import annotations

import sys

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Long-context evaluation suite: RULER, MRCR and recall-decay tasks over any model, at any context length.",
)
err = Console(stderr=True)


def _register() -> None:
    # one line per verb module; each defines its command(s) on `app`
    from evals import generate_cmd, run_cmd  # noqa: F401


def user_errors() -> tuple[type[Exception], ...]:
    from evals.errors import EvalError
    from models.errors import ModelError
    from tasks.errors import TaskError

    return (EvalError, ModelError, TaskError)


def main() -> None:
    _register()
    try:
        app(standalone_mode=False)
    except user_errors() as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(2)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted: everything scored so far is saved; rerun the same command to resume")
        sys.exit(130)
    except Exception as e:  # click's usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Exit):
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
