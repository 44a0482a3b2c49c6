"""The `hardmine` command line: one typer app; each subcommand lives in its own module and is registered here.

Errors from bad input end the command with a one-line message and exit code 2, without a traceback.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hardmine.cli_errors import user_errors_exit_2
from hardmine.experiments.commands import compare, report
from hardmine.retrieval.command import mine_negatives

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def main(plugin: Annotated[list[str], typer.Option(
        help="A .py file or module to import first, so that the policies, guards or losses it defines are "
             "usable by name (repeatable).")] = []) -> None:  # noqa: B006 - typer reads the default, never mutates it
    """Hard example mining for PyTorch training."""
    from hardmine.registry import load_plugin

    for source in plugin:
        try:
            load_plugin(source)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--plugin") from None


app.command("mine-negatives")(user_errors_exit_2(mine_negatives))
app.command("compare")(compare)
app.command("report")(report)
