"""The summary for a terminal (rich) and report.html: the verdict in words, the table with a legend, the plots
each with two sentences on what it shows and how to read it."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from rich.table import Table

from hardmine.atomic import write_text
from hardmine.experiments.metrics import BASELINE
from hardmine.experiments.plots import PLOTS

_COLUMNS = (  # (key, header, format, definition)
    ("test_acc_mean", "test acc", "{:.4f}", "test accuracy at the end of training, mean over seeds"),
    ("test_acc_std", "± std", "{:.4f}", "standard deviation of the test accuracy over seeds (ddof=1)"),
    ("diff", "vs uniform (95% CI)", "{}", (
        "mean over seeds of the paired difference of test accuracy against uniform's run with the same seed, in "
        "points, with its 95% t interval; 'within noise' when the interval contains 0")),
    ("macro_f1_mean", "macro-F1", "{:.4f}", "test macro-F1 (the mean of the per-class F1 scores), mean over seeds"),
    ("compute_to_target", "compute to target", "{:.2f}x", (
        "compute (forwards + 2 x backwards, in samples) until the run reaches the target, over uniform's mean "
        "total compute; the median over all seeds, a seed that never reaches it counting as infinite; 'not "
        "reached' when the median seed does not reach it")),
    ("reached", "reached", "{}", "seeds that reach the target, of all seeds"),
    ("compute_total", "compute total", "{:.2f}x", "total compute of the run over uniform's, mean over seeds"),
    ("seconds_to_target", "time to target", "{:.1f} s", (
        "training wall time until the target, median over seeds like compute (a shared machine: noisy)")),
    ("hardmine_fraction", "hardmine time", "{:.1%}", (
        "hardmine's own time (sampler and score statistics) as a share of the training wall time, mean over "
        "seeds")),
    ("rare2_recall_mean", "rare-2 recall", "{:.3f}", (
        "test recall of the two classes with the fewest training samples, averaged (mean over seeds)")),
    ("noise_precision", "noise P", "{:.2f}", (
        "of the samples the noise guard suspects, the share whose label was flipped")),
    ("noise_recall", "noise R", "{:.2f}", "of the flipped labels, the share the noise guard suspects"),
    ("selected_flipped_share", "flipped in backprop", "{:.3f}", (
        "with label noise: the share of flipped labels among the samples back-propagated, mean over seeds (the "
        "noise rate for uniform; above it, a strategy trains on the noise more than shuffling does)")),
    ("diverged", "diverged", "{}", "seeds whose training blew up (loss non-finite or above 1e4)"),
)


def _fmt(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return pattern.format(value)


def diff_text(row: dict[str, Any]) -> str:
    """'+1.20 [+0.40, +2.00]' points, with 'within noise' when the interval contains 0; '-' for uniform."""
    if row["strategy"] == BASELINE:
        return "-"
    diff, low, high = (100 * row[k] if row.get(k) is not None else math.nan
                       for k in ("diff_vs_uniform", "diff_low", "diff_high"))
    if not math.isfinite(diff):
        return "-"
    if not math.isfinite(low):
        return f"{diff:+.2f} (1 seed)"
    noise = " within noise" if row.get("within_noise") else ""
    return f"{diff:+.2f} [{low:+.2f}, {high:+.2f}]{noise}"


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    if key == "diff":
        return diff_text(row)
    if key == "compute_to_target" and row.get(key) is None:
        return "not reached"
    if key == "seconds_to_target" and row.get(key) is None:
        return "-"
    return _fmt(row.get(key), fmt)


def _columns(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    noisy = results["dataset"].get("flipped")
    guarded = any(row.get("noise_precision") is not None and math.isfinite(row["noise_precision"])
                  for row in results["summary"] if isinstance(row.get("noise_precision"), float))
    diverged = any(row.get("diverged") for row in results["summary"])
    keep = []
    for column in _COLUMNS:
        key = column[0]
        if key.startswith("noise") and not (noisy and guarded):
            continue
        if key == "selected_flipped_share" and not noisy:
            continue
        if key == "diverged" and not diverged:
            continue
        keep.append(column)
    return keep


def caption(results: dict[str, Any]) -> str:
    """One line on what was compared and how the target was chosen."""
    d, c, t = results["dataset"], results["config"], results["target"]
    noise = f", {d['label_noise']:.0%} label noise ({d.get('noise_seed', 'fixed')})" if d.get("label_noise") else ""
    value = "-" if t.get("value") is None else f"{t['value']:.4f}"
    return (f"{d['name']} ({d['n_train']} train / {d['n_val']} validation / {d['n_test']} test{noise}), "
            f"model {c['model']}, {c['optimizer']} lr {c['lr']} {c['schedule']}, {c['epochs']} epochs, batch "
            f"{c['batch_size']}, seeds {results['seeds']}. Target: uniform's mean validation accuracy over its last "
            f"epoch, {value}; reached at the first evaluation where two consecutive validation accuracies average "
            f"at least that.")


def verdict(results: dict[str, Any]) -> list[str]:
    """The result in words, one sentence per finding: who reaches the target at what compute in how many seeds,
    who ends above or below uniform beyond the seed spread, and who is within noise."""
    rows = {row["strategy"]: row for row in results["summary"]}
    n = len(results["seeds"])
    sentences = []
    fast = [r for r in rows.values() if r["strategy"] != BASELINE and r.get("compute_to_target") is not None]
    fast.sort(key=lambda r: (r["compute_to_target"], -int(r["reached"].split("/")[0])))
    base = rows.get(BASELINE)
    target = results["target"].get("value")
    if base is not None and target is not None:
        sentences.append(f"Target: validation accuracy {target:.4f} (uniform's mean over its last epoch, averaged over "
                         f"seeds); uniform itself reaches it in {base['reached']} seeds.")
    if fast:
        best = fast[0]
        sentences.append(f"On this data, {best['strategy']} reaches uniform's accuracy at "
                         f"{best['compute_to_target']:.2f}x the compute in {best['reached']} seeds"
                         + ("; also reaching it: " + ", ".join(f"{r['strategy']} ({r['compute_to_target']:.2f}x, "
                                                              f"{r['reached']})" for r in fast[1:4]) if len(fast) > 1
                            else "") + ".")
    else:
        sentences.append("No strategy other than uniform reaches uniform's accuracy in the median seed.")
    if n < 2:
        sentences.append("With one seed there is no spread to compare against: run --seeds 3 or more.")
        return sentences
    above = [r for r in rows.values() if r.get("within_noise") is False and r["diff_vs_uniform"] > 0]
    below = [r for r in rows.values() if r.get("within_noise") is False and r["diff_vs_uniform"] < 0]
    noise = [r["strategy"] for r in rows.values() if r.get("within_noise") is True]
    for r in above:
        sentences.append(f"{r['strategy']} ends {100 * r['diff_vs_uniform']:.2f} points above uniform in test "
                         f"accuracy, beyond the seed spread (95% interval {diff_text(r).split(' ', 1)[1]}).")
    for r in below:
        sentences.append(f"{r['strategy']} ends {-100 * r['diff_vs_uniform']:.2f} points below uniform, beyond the "
                         "seed spread.")
    if noise:
        sentences.append(f"Within noise of uniform's test accuracy: {', '.join(noise)}.")
    return sentences


def table_width(results: dict[str, Any]) -> int:
    """Characters a terminal needs to show `rich_table` without folding it."""
    longest = max(len(row["strategy"]) for row in results["summary"])
    widths = [max(len(h), 8 if k != "diff" else 34) + 3 for k, h, _, _ in _columns(results)]
    return longest + 4 + sum(widths)


def rich_table(results: dict[str, Any]) -> Table:
    """The summary as a rich Table, one row per strategy (print it at least `table_width` wide)."""
    columns = _columns(results)
    table = Table(title=caption(results), title_justify="left")
    table.add_column("strategy", no_wrap=True)
    for _, header, _, _ in columns:
        table.add_column(header, justify="right", no_wrap=True)
    for row in results["summary"]:
        table.add_row(row["strategy"], *(_cell(row, key, fmt) for key, _, fmt, _ in columns))
    return table


_PLOT_TEXT = {
    "accuracy.png": "Validation accuracy (left) and test accuracy (right) against compute, in uniform epochs "
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
    sentences = "".join(f"<li>{html.escape(s)}</li>" for s in verdict(results))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>hardmine compare: {html.escape(results['dataset']['name'])}</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
dt{{font-weight:bold;margin-top:.4em}}img{{max-width:100%}}</style></head><body>
<h1>hardmine compare: {html.escape(results['dataset']['name'])}</h1>
<h2>Verdict</h2><ul>{sentences}</ul>
<p>{html.escape(caption(results))}</p>
<table><tr><th>strategy</th>{head}</tr>{body}</table>
<h3>What the columns mean</h3><dl>{legend}</dl>
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
