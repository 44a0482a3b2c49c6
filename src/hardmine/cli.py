"""The `hardmine` command line: one typer app; each subcommand lives in its own module and is registered here.

Errors from bad input end the command with a one-line message and exit code 2, without a traceback.
"""

from __future__ import annotations

import typer

from hardmine.cli_errors import user_errors_exit_2
from hardmine.experiments.commands import compare, report
from hardmine.retrieval.command import mine_negatives

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def main() -> None:
    """Hard example mining for PyTorch training."""


app.command("mine-negatives")(user_errors_exit_2(mine_negatives))
app.command("compare")(compare)
app.command("report")(report)
