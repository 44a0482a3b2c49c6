"""The `hardmine` command line: one typer app; each subcommand lives in its own module and is registered here.

Errors from bad input end the command with a one-line message and exit code 2, without a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

from hardmine.retrieval.command import mine_negatives

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, ImportError)


@app.callback()
def main() -> None:
    """Hard example mining for PyTorch training."""


def user_errors_exit_2(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can fix into `error: <message>` on stderr and exit code 2."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as err:
            typer.echo(f"error: {' '.join(str(err).split())}", err=True)
            raise typer.Exit(2) from None

    return run


app.command("mine-negatives")(user_errors_exit_2(mine_negatives))
