"""The summary table printed at the end of `hardmine mine-negatives`."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from hardmine.retrieval.result import MinedNegatives


def print_mined_summary(mined: MinedNegatives, rows: int, out: Path, console: Console | None = None) -> None:
    """A two-column table of `mined.summary()`, the notes, and where the rows went."""
    console = console or Console()
    table = Table(title=f"hard negatives ({mined.search} search, {mined.metric})")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for name, value in mined.summary().items():
        shown = f"{value:.2%}" if name.endswith("_share") else f"{value:.4f}" if isinstance(value, float) \
            else f"{value:,}"
        table.add_row(name, shown)
    console.print(table)
    for note in mined.notes():
        console.print(f"note: {note}")
        if note.startswith("negatives score higher"):
            Console(stderr=True).print(f"warning: {note}")
    console.print(f"wrote {rows:,} rows to {out}")
