"""The summary table for a terminal (rich) and report.html, which embeds the table and every plot."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from rich.table import Table

from hardmine.atomic import write_text
from hardmine.experiments.plots import PLOTS

_COLUMNS = (  # (key, header, format)
    ("test_acc_mean", "acc", "{:.4f}"),
    ("test_acc_std", "± std", "{:.4f}"),
    ("macro_f1_mean", "macro-F1", "{:.4f}"),
    ("rare2_recall_mean", "rare-2 recall", "{:.3f}"),
    ("backprops_to_uniform_acc", "backprops to U", "{:.2f}x"),
    ("time_to_uniform_acc", "time to U", "{:.2f}x"),
    ("reached", "reached", "{}"),
    ("hardmine_fraction", "hardmine", "{:.1%}"),
    ("noise_precision", "noise P", "{:.2f}"),
    ("noise_recall", "noise R", "{:.2f}"),
    ("diverged", "diverged", "{}"),
)


def _fmt(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return pattern.format(value)


def _columns(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    noisy = results["dataset"].get("flipped")
    diverged = any(row.get("diverged") for row in results["summary"])
    return [c for c in _COLUMNS if (noisy or not c[0].startswith("noise")) and (diverged or c[0] != "diverged")]


def caption(results: dict[str, Any]) -> str:
    """One line on what was compared and what the ratio columns mean."""
    d, c, b = results["dataset"], results["config"], results["baseline"]
    noise = f", {d['label_noise']:.0%} label noise" if d.get("label_noise") else ""
    return (f"{d['name']} ({d['n_train']} train / {d['n_test']} test{noise}), {c['model']}, {c['epochs']} epochs, "
            f"batch {c['batch_size']}, seeds {results['seeds']}. 'to U': backprops / training time until the "
            f"test accuracy first reaches uniform's final {b['test_acc']:.4f}, over uniform's totals; 'hardmine': "
            f"its share of the training time.")


def table_width(results: dict[str, Any]) -> int:
    """Characters a terminal needs to show `rich_table` without folding it."""
    longest = max(len(row["strategy"]) for row in results["summary"])
    return longest + 4 + sum(max(len(h), 8) + 3 for _, h, _ in _columns(results))


def rich_table(results: dict[str, Any]) -> Table:
    """The summary as a rich Table, one row per strategy (print it at least `table_width` wide)."""
    columns = _columns(results)
    table = Table(title=caption(results), title_justify="left")
    table.add_column("strategy", no_wrap=True)
    for _, header, _ in columns:
        table.add_column(header, justify="right", no_wrap=True)
    for row in results["summary"]:
        table.add_row(row["strategy"], *(_fmt(row.get(key), fmt) for key, _, fmt in columns))
    return table


def write_html(out: Path, results: dict[str, Any]) -> Path:
    """report.html in `out`: caption, table and the PNG plots found in `out`, embedded (a single file)."""
    columns = _columns(results)
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in columns)
    body = "".join(
        f"<tr><td>{html.escape(row['strategy'])}</td>"
        + "".join(f"<td>{html.escape(_fmt(row.get(k), f))}</td>" for k, _, f in columns) + "</tr>"
        for row in results["summary"])
    images = []
    for name in PLOTS:
        path = Path(out) / name
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            images.append(f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" '
                          f'src="data:image/png;base64,{data}">')
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>hardmine compare: {html.escape(results['dataset']['name'])}</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
img{{max-width:100%}}</style></head><body>
<h1>hardmine compare: {html.escape(results['dataset']['name'])}</h1>
<p>{html.escape(caption(results))}</p>
<table><tr><th>strategy</th>{head}</tr>{body}</table>
<p>Command: <code>{html.escape(' '.join(map(str, results['command'])))}</code><br>{html.escape(versions)}</p>
{''.join(images)}
</body></html>
"""
    path = Path(out) / "report.html"
    write_text(path, page)
    return path
