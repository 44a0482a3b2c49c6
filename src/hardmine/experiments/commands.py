"""The typer commands `compare` and `report`, as plain functions: the CLI registers them with `app.command()`.

Errors a user can fix (unknown strategy or parameter, missing file, bad column, one-class data, ...) end the
command with `error: <one line>` on stderr and exit code 2, before anything is written to --out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hardmine.cli_errors import user_errors_exit_2

DEFAULT_STRATEGIES = "uniform,ohem,focal,importance:normalize=none,selective_backprop,prune_easy"
@user_errors_exit_2
def compare(
    out: Annotated[Path, typer.Option(help="Output directory; a rerun with the same DIR resumes the finished runs.")],
    dataset: Annotated[str, typer.Option(help="digits, fashion-mnist, shuttle, or a .npz/.csv/.parquet file.")]
    = "digits",
    strategies: Annotated[str, typer.Option(
        help="Comma-separated specs: a policy or in-batch loss name with key=value parameters and +guards, e.g. "
             "'uniform,importance:alpha=0.7,mix=0.2,ohem+noise_guard'. 'uniform' is always added.")]
    = DEFAULT_STRATEGIES,
    seeds: Annotated[int, typer.Option(help="Number of seeds (0 .. n-1) per strategy.")] = 1,
    epochs: Annotated[int, typer.Option(help="Training epochs per run.")] = 10,
    model: Annotated[str, typer.Option(help="logreg, mlp or cnn (images only).")] = "mlp",
    hidden: Annotated[int, typer.Option(help="Hidden units of the MLP.")] = 256,
    batch_size: Annotated[int, typer.Option(help="Samples per batch.")] = 128,
    lr: Annotated[float, typer.Option(help="SGD learning rate.")] = 0.05,
    momentum: Annotated[float, typer.Option(help="SGD momentum.")] = 0.9,
    weight_decay: Annotated[float, typer.Option(help="SGD weight decay.")] = 0.0,
    label_noise: Annotated[float, typer.Option(
        help="Fraction of training labels flipped to another class (symmetric, seeded; saved for scoring).")] = 0.0,
    imbalance: Annotated[float | None, typer.Option(
        help="Subsample training classes geometrically: the last class keeps this fraction, class 0 all.")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Where the data files are (fashion-mnist: the idx files; shuttle: Shuttle.rda or its dpkg -x dir).")]
    = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of a CSV or parquet file.")] = None,
    test_fraction: Annotated[float, typer.Option(help="Stratified test split when the data has none.")] = 0.25,
    data_seed: Annotated[int, typer.Option(help="Seed of the test split, the imbalance and the label noise.")] = 0,
    evals_per_epoch: Annotated[int, typer.Option(help="Test evaluations per epoch (curve resolution).")] = 4,
    threads: Annotated[int, typer.Option(help="torch threads per run.")] = 1,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per run.")] = True,
) -> None:
    """Run mining strategies side by side on real data, seeds x strategies, and write tables and plots to OUT."""
    from hardmine.experiments.config import TrainConfig
    from hardmine.experiments.progress import RunProgress
    from hardmine.experiments.report import rich_table, table_width, write_html
    from hardmine.experiments.runner import DataOptions, prepare, run_comparison

    config = TrainConfig(model=model, hidden=hidden, epochs=epochs, batch_size=batch_size, lr=lr,
                         momentum=momentum, weight_decay=weight_decay, evals_per_epoch=evals_per_epoch,
                         threads=threads)
    options = DataOptions(dataset, data_dir, label_column, test_fraction, data_seed, label_noise, imbalance)
    comparison = prepare(options, strategies, seeds, config, out)
    console = Console()
    for note in comparison.notes:
        console.print(f"note: {note}")
    with RunProgress(epochs, enabled=progress) as bars:
        results = run_comparison(comparison, bars.start, argv=["hardmine", *sys.argv[1:]])
    write_html(out, results)
    Console(width=max(console.width, table_width(results))).print(rich_table(results))
    console.print(f"wrote {out}/results.json, summary.csv, report.html and the plots")


@user_errors_exit_2
def report(
    out: Annotated[Path, typer.Argument(help="A directory written by `hardmine compare`.")],
) -> None:
    """Re-render the table, summary.csv and the plots from OUT/results.json, and write OUT/report.html."""
    from hardmine.experiments.report import rich_table, table_width, write_html
    from hardmine.experiments.results import read_results, write_results
    from hardmine.experiments.runner import render_plots

    results = read_results(out)
    write_results(out, results)
    render_plots(out, results)
    path = write_html(out, results)
    console = Console()
    Console(width=max(console.width, table_width(results))).print(rich_table(results))
    console.print(f"wrote {path}")
