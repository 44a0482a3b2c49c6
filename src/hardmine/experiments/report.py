"""The summary for a terminal (rich) and report.html: the verdict in words (`verdict.py`), the table with a
legend (the key columns in the terminal, every column in report.html), the plots each with two sentences on what
it shows and how to read it."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hardmine.atomic import write_text
from hardmine.experiments.plots import PLOTS
from hardmine.experiments.verdict import diff_text, findings, metric_name

_COLUMNS = (  # (key, header, format, definition, in the terminal)
    ("lr", "lr", "{:.4g}", (
        "the peak learning rate the strategy's runs used: chosen on the validation split from the grid (the "
        "first seed runs at every grid rate; the best final validation metric wins, ties go to the given rate), "
        "or the given rate without tuning"), True),
    ("metric", "{metric} ± std", "{}", "the test metric at the end of training, mean ± standard deviation over "
                                        "seeds (ddof=1)", True),
    ("diff", "vs uniform (95% CI)", "{}", (
        "mean over seeds of the paired difference of the test metric against uniform's run with the same seed "
        "(each at its chosen learning rate), in points, with its 95% t interval; within noise when the interval "
        "contains 0"), True),
    ("compute_vs_uniform", "compute to target", "{:.2f}x", (
        "compute (forwards + 2 x backwards, in samples) until the run reaches the target, over the compute "
        "uniform needs to reach it (the median of uniform's seeds, a uniform seed that ends just short counting its "
        "whole run); the median over all seeds, a seed that never reaches it counting as infinite; 'not reached' "
        "when the median seed does not reach it"), True),
    ("reached", "reached", "{}", "seeds that reach the target, of all seeds", True),
    ("seconds_to_target", "time to target", "{:.2f} s", (
        "training wall time until the target, median over seeds like compute (a shared machine: noisy)"), True),
    ("collapsed", "collapsed", "{}", "seeds whose final test predictions are all one class or at chance", True),
    ("diverged", "diverged", "{}", "seeds whose training blew up (loss non-finite or above 1e4)", True),
    ("test_acc_mean", "test acc", "{:.4f}", "test accuracy at the end of training, mean over seeds", False),
    ("macro_f1_mean", "macro-F1", "{:.4f}", "test macro-F1 (the mean of the per-class F1 scores), mean over seeds",
     False),
    ("compute_to_target", "compute to target / uniform total", "{:.2f}x", (
        "the same median compute to target, over uniform's mean TOTAL compute (uniform's own row shows where "
        "uniform reaches the target in its run)"), False),
    ("seconds_vs_uniform", "time to target vs uniform", "{:.2f}x", (
        "the median training wall time to target over uniform's own"), False),
    ("compute_total", "compute total", "{:.2f}x", "total compute of the run over uniform's, mean over seeds", False),
    ("tuning_compute", "tuning compute", "{:.2f}x", (
        "compute of the tuning runs at the rates not chosen, over uniform's mean total compute; reported apart, not "
        "part of compute to target"), False),
    ("hardmine_fraction", "hardmine time", "{:.1%}", (
        "hardmine's own time (sampler and score statistics) as a share of the training wall time, mean over "
        "seeds"), False),
    ("rare2_recall_mean", "rare-2 recall", "{:.3f}", (
        "test recall of the two classes with the fewest training samples, averaged (mean over seeds)"), False),
    ("noise_precision", "noise P", "{:.2f}", (
        "of the samples the noise guard suspects, the share whose label was flipped"), False),
    ("noise_recall", "noise R", "{:.2f}", "of the flipped labels, the share the noise guard suspects", False),
    ("selected_flipped_share", "flipped in backprop", "{:.3f}", (
        "with label noise: the share of flipped labels among the samples back-propagated, mean over seeds (the "
        "noise rate for uniform; above it, a strategy trains on the noise more than shuffling does)"), False),
)
_SHORT = {"accuracy": "acc", "balanced_accuracy": "bal. acc", "macro_f1": "macro-F1"}


def _fmt(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return pattern.format(value)


def _cell(row: dict[str, Any], key: str, fmt: str, terminal: bool = False) -> str:
    if key == "diff":  # in a terminal, without spaces inside the interval: it wraps before it, not inside
        return diff_text(row).replace(" within noise", "").replace(", ", ",") if terminal else diff_text(row)
    if key == "metric":
        return _fmt(row.get("metric_mean"), "{:.4f}") + " ± " + _fmt(row.get("metric_std"), "{:.4f}")
    if key == "lr" and row.get("lr_factor") not in (None, 1.0) and not terminal:
        return f"{row['lr']:.4g} (x{row['lr_factor']:g})"
    if key in ("compute_to_target", "compute_vs_uniform") and row.get(key) is None:
        return "not reached"
    if key == "seconds_to_target" and row.get(key) is None:
        return "-"
    return _fmt(row.get(key), fmt)


def _columns(results: dict[str, Any], terminal: bool = False) -> list[tuple[str, str, str, str]]:
    """(key, header, format, definition) of the columns to show: the key ones in a terminal, all in report.html,
    less those with nothing to say (noise columns without label noise, no collapsed or diverged seed, ...)."""
    noisy = results["dataset"].get("flipped")
    rows = results["summary"]
    guarded = any(isinstance(r.get("noise_precision"), float) and math.isfinite(r["noise_precision"]) for r in rows)
    metric = _SHORT.get(results["target"].get("metric", "accuracy"), "acc")
    keep = []
    for key, header, fmt, definition, short in _COLUMNS:
        if terminal and not short:
            continue
        if (key.startswith("noise") and not (noisy and guarded)) or (key == "selected_flipped_share" and not noisy):
            continue
        if key in ("collapsed", "diverged") and not any(r.get(key) for r in rows):
            continue
        if key == "tuning_compute" and not results.get("tuning", {}).get("enabled"):
            continue
        keep.append((key, header.format(metric=metric), fmt, definition))
    return keep


def caption(results: dict[str, Any]) -> str:
    """One paragraph on what was compared, the learning rates and how the target was chosen."""
    d, c, t = results["dataset"], results["config"], results["target"]
    noise = f", {d['label_noise']:.0%} label noise ({d.get('noise_seed', 'fixed')})" if d.get("label_noise") else ""
    value = "-" if t.get("value") is None else f"{t['value']:.4f}"
    name = metric_name(results)
    tuning = results.get("tuning", {})
    if tuning.get("enabled"):
        grid = ", ".join(f"x{f:g}" for f in tuning["grid"])
        rates = (f"given lr {c['lr']:g}, tuned per strategy over {grid} on seed {tuning['seed']} (tuning runs: "
                 f"{tuning['compute']:.2f}x uniform's compute, apart)")
    else:
        rates = f"lr {c['lr']:g} for every strategy (untuned)"
    return (f"{d['name']} ({d['n_train']} train / {d['n_val']} validation / {d['n_test']} test{noise}), "
            f"model {c['model']}, {c['optimizer']}, {rates}, {c['schedule']} schedule, {c['epochs']} epochs, batch "
            f"{c['batch_size']}, seeds {results['seeds']}. Target: uniform's mean validation {name} over its last "
            f"epoch, {value}; reached at the first evaluation where two consecutive validation values average "
            f"at least that.")


_COMPACT_HEADERS = {"vs uniform (95% CI)": "vs uniform\n(95% CI)", "compute to target": "compute\nto target",
                    "time to target": "time to\ntarget", "collapsed": "col-\nlapsed", "diverged": "di-\nverged"}


def _compact(key: str, text: str) -> str:
    """A terminal cell on two lines: the diff's mean above its interval, the metric's std below its mean."""
    if key == "diff" and " " in text:
        return text.replace(" ", "\n", 1)
    if key == "metric":
        return text.replace(" ± ", "\n±")
    if text == "not reached":
        return "not\nreached"
    return text


def _width(texts: list[str]) -> int:
    return max(len(line) for text in texts for line in text.split("\n"))


def rich_table(results: dict[str, Any], width: int = 120) -> Table:
    """The summary's key columns as a rich Table, one row per strategy, at most `width` characters wide (the
    console's; the wide columns are in report.html): cells go on two lines, then strategy names fold, as needed."""
    columns = _columns(results, terminal=True)
    rows = results["summary"]
    cells = [[_cell(row, key, fmt, terminal=True) for key, _, fmt, _ in columns] for row in rows]
    headers = [header for _, header, _, _ in columns]
    names = [row["strategy"] for row in rows]

    def widths(grid: list[list[str]], heads: list[str]) -> list[int]:
        return [_width([h, *(r[j] for r in grid)]) for j, h in enumerate(heads)]

    gap = 3 * len(columns)  # between two columns: a padding space either side of the (blank) divider
    if _width(["strategy", *names]) + sum(widths(cells, headers)) + gap > width:
        cells = [[_compact(key, c) for (key, *_), c in zip(columns, r)] for r in cells]
        headers = [_COMPACT_HEADERS.get(h, h.replace(" ± ", "\n± ")) for h in headers]
    room = max(8, width - sum(widths(cells, headers)) - gap)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("strategy", overflow="fold", width=min(_width(["strategy", *names]), room))
    for head, size in zip(headers, widths(cells, headers)):
        table.add_column(head, justify="right", no_wrap=True, width=size)
    for name, row in zip(names, cells):
        table.add_row(Text(name), *(Text(c, justify="right") for c in row))
    return table


_PLOT_TEXT = {
    "accuracy.png": "The target metric (accuracy by default) on validation (left) and test (right) against compute, "
                    "in uniform epochs "
                    "(forwards + 2 x backwards, over 3N), mean over seeds with a band from the lowest to "
                    "the highest seed. The dashed line is the target; a curve that crosses it further left got "
                    "there with less compute, and the dots mark where each seed reached it.",
    "accuracy_time.png": "Test accuracy against training wall time, the same runs. Wall time includes hardmine's own "
                         "work and the re-forwards; on a shared machine it is noisy, so read it beside compute.",
    "per_class_recall.png": "Test recall of each class, rarest training class first, mean over seeds with the seed "
                            "standard deviation as a bar. The axis starts near the lowest recall shown so that "
                            "differences of a point or two are visible.",
    "slice_accuracy.png": "Test accuracy within difficulty slices: quintiles of a separately trained uniform "
                          "reference model's test loss, easy to hard. Only the slices where the strategies differ "
                          "by more than their seed spread are drawn.",
    "cartography.png": "Dataset cartography of the first seed's training samples for every strategy: confidence "
                       "(mean true-class probability when seen) against variability (its spread over epochs). "
                       "Flipped labels are red and sit at low confidence; the noise guard's suspects are circled.",
}


def tuning_html(results: dict[str, Any]) -> str:
    """The learning rates tried per strategy and the validation metric each reached (the chosen one in bold), as an
    HTML section; empty without tuning."""
    tuning = results.get("tuning", {})
    if not tuning.get("enabled"):
        return ""
    scores = tuning["validation_scores"]
    rates = sorted({lr for found in scores.values() for lr in found if lr != "failed"}, key=float)
    head = "".join(f"<th>lr {html.escape(lr)}</th>" for lr in rates)
    body = []
    for label, found in scores.items():
        chosen = f"{tuning['chosen'][label]['lr']:.6g}"
        cells = []
        for lr in rates:
            text = _fmt(found.get(lr), "{:.4f}") + (" (collapsed or diverged)" if lr in found.get("failed", []) else "")
            cells.append(f"<td><b>{html.escape(text)}</b></td>" if lr == chosen else f"<td>{html.escape(text)}</td>")
        body.append(f"<tr><td>{html.escape(label)}</td>{''.join(cells)}</tr>")
    return (f"<h3>Learning rates tried (seed {tuning['seed']}: validation {html.escape(metric_name(results))} over "
            f"the last epoch; chosen in bold)</h3><table><tr><th>strategy</th>{head}</tr>{''.join(body)}</table>")


def write_html(out: Path, results: dict[str, Any]) -> Path:
    """report.html in `out`: verdict, caption, table, legend and the PNG plots found in `out` (one file)."""
    columns = _columns(results)
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _, _ in columns)
    body = "".join(
        f"<tr><td>{html.escape(row['strategy'])}</td>"
        + "".join(f"<td>{html.escape(_cell(row, k, f))}</td>" for k, _, f, _ in columns) + "</tr>"
        for row in results["summary"])
    legend = "".join(f"<dt>{html.escape(h)}</dt><dd>{html.escape(d)}</dd>" for _, h, _, d in columns)
    images = []
    for name in PLOTS:
        path = Path(out) / name
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            images.append(f"<h2>{html.escape(_PLOT_TITLES.get(name, name))}</h2><p>{html.escape(_PLOT_TEXT[name])}</p>"
                          f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}">')
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    sentences = "".join(f"<li>{html.escape(s)}</li>" for s in findings(results))
    warned = "".join(f"<li>{html.escape(w)}</li>" for w in results.get("warnings", []))
    warned = f"<p>Warnings:</p><ul>{warned}</ul>" if warned else ""
    recommended = html.escape(results.get("recommendation", ""))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>hardmine compare: {html.escape(results['dataset']['name'])}</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
dt{{font-weight:bold;margin-top:.4em}}img{{max-width:100%}}</style></head><body>
<h1>hardmine compare: {html.escape(results['dataset']['name'])}</h1>
<h2>Verdict</h2><p><strong>{recommended}</strong></p>{warned}<ul>{sentences}</ul>
<p>{html.escape(caption(results))}</p>
<table><tr><th>strategy</th>{head}</tr>{body}</table>
<h3>What the columns mean</h3><dl>{legend}</dl>
{tuning_html(results)}
{''.join(images)}
<p>Command: <code>{html.escape(' '.join(map(str, results['command'])))}</code><br>{html.escape(versions)}</p>
</body></html>
"""
    path = Path(out) / "report.html"
    write_text(path, page)
    return path


_PLOT_TITLES = {"accuracy.png": "Accuracy against compute", "accuracy_time.png": "Accuracy against wall time",
                "per_class_recall.png": "Recall per class", "slice_accuracy.png": "Accuracy by difficulty",
                "cartography.png": "Dataset cartography per strategy"}


def print_summary(results: dict[str, Any], console: Console) -> None:
    """The summary for a terminal: the recommendation first (one line), the warnings and notes, the caption, the
    table of the key columns (wrapped to the console's width) and the findings."""
    console.print(f"recommendation: {results.get('recommendation', '-')}", soft_wrap=True, markup=False)
    for warning in results.get("warnings", []):
        console.print(f"warning: {warning}", markup=False)
    for note in results.get("notes", []):
        console.print(f"note: {note}", markup=False)
    console.print()
    console.print(caption(results), markup=False)
    console.print(rich_table(results, console.width))
    console.print()
    for sentence in findings(results):
        console.print(sentence, markup=False)
