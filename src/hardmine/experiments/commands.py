"""The typer commands `compare` and `report`, as plain functions: the CLI registers them with `app.command()`.

`compare` loads the data set, builds the model factory (built-in or `package.module:factory`) and calls
`hardmine.compare`, the same runner as the Python API. Errors a user can fix (unknown strategy or parameter, bad
number, missing file, one-class data, a factory that cannot be imported, ...) end the command with
`error: <one line>` on stderr and exit code 2, before anything is written to --out.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hardmine._checks import check_choice
from hardmine.cli_errors import user_errors_exit_2
from hardmine.experiments.api import DEFAULT_STRATEGIES, IMBALANCE_STRATEGIES
from hardmine.experiments.config import OPTIMIZERS, SCHEDULES
from hardmine.experiments.data import NOISE_SEEDS
from hardmine.experiments.models import MODELS
from hardmine.experiments.strategies import known_strategies

_KNOWN = known_strategies()
_STRATEGIES_HELP = (
    "Comma-separated specs: a policy or in-batch loss name with key=value parameters and +guards, e.g. "
    "'uniform,importance:alpha=0.7,mix=0.2,ohem+noise_guard'. 'uniform' is always added. "
    f"Policies: {', '.join(_KNOWN['policies'])}. In-batch losses: {', '.join(_KNOWN['in-batch losses'])}. "
    f"Guards: {', '.join(_KNOWN['guards'])}. Default: {', '.join(DEFAULT_STRATEGIES.split(','))}; on imbalanced "
    f"classes also {', '.join(IMBALANCE_STRATEGIES.split(','))}.")


def _finite(name: str, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def model_factory(model: str, input_shape: tuple[int, ...], num_classes: int,
                  hidden: int) -> Callable[[int], object]:
    """make_model(seed) for a built-in model name, or the factory named by `package.module:factory` (imported
    with the working directory on the path); ValueError / ImportError naming --model otherwise."""
    if model in MODELS:
        from hardmine.experiments.models import build_model

        build_model(model, input_shape, num_classes, hidden)  # the shape errors, before anything runs
        return lambda seed: build_model(model, input_shape, num_classes, hidden)
    module_name, sep, attribute = model.partition(":")
    if not sep or not module_name or not attribute:
        check_choice("--model", model, list(MODELS), "package.module:factory")  # raises: not a name, no ":"
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(f"--model {model!r}: cannot import {module_name!r} ({err})") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"--model {model!r}: {module_name} has no callable {attribute!r}")
    return factory


@user_errors_exit_2
def compare(
    out: Annotated[Path, typer.Option(help="Output directory; a rerun with the same DIR resumes the finished runs.")],
    dataset: Annotated[str, typer.Option(help="digits, fashion-mnist, shuttle, or a .npz/.csv/.parquet file.")]
    = "digits",
    strategies: Annotated[str | None, typer.Option(help=_STRATEGIES_HELP, show_default=False)] = None,
    seeds: Annotated[int, typer.Option(help="Number of seeds (0 .. n-1) per strategy; seeds pair across strategies.")]
    = 3,
    epochs: Annotated[int, typer.Option(help="Training epochs per run.")] = 10,
    model: Annotated[str, typer.Option(
        help="logreg, mlp, cnn (images only), or package.module:factory, a function make_model(seed) -> nn.Module "
             "(imported with the working directory on the path).")] = "mlp",
    hidden: Annotated[int, typer.Option(help="Hidden units of the built-in MLP.")] = 256,
    batch_size: Annotated[int, typer.Option(help="Samples per batch.")] = 128,
    optimizer: Annotated[str, typer.Option(help=f"One of {', '.join(OPTIMIZERS)}.")] = "sgd",
    lr: Annotated[float | None, typer.Option(
        help="Peak learning rate given (default: 0.05 for sgd, 0.001 for adamw); tuning tries --lr-grid around it.",
        show_default=False)] = None,
    lr_grid: Annotated[str, typer.Option(
        help="Learning-rate factors of --lr tried on each strategy's first seed (uniform's too); the best final "
             "validation metric picks the rate, ties go to --lr; the other seeds run at the chosen rate.")]
    = "0.5,1,2",
    lr_extend: Annotated[int, typer.Option(
        help="When a strategy's best rate is at an edge of --lr-grid, try up to this many more factors past that "
             "edge (each one grid step further).")] = 2,
    tune: Annotated[bool, typer.Option(
        help="Tune each strategy's learning rate over --lr-grid; --no-tune runs all at --lr (the verdict then says "
             "'untuned').")] = True,
    metric: Annotated[str | None, typer.Option(
        help="accuracy, balanced_accuracy or macro_f1: the target and the table (default: balanced_accuracy when "
             "the training classes' largest/smallest count ratio exceeds 3, else accuracy).", show_default=False)]
    = None,
    validation_file: Annotated[Path | None, typer.Option(
        help="An .npz with arrays x (or X) and y used as the validation split instead of --validation: the same "
             "classes and feature shape as the training data, features as loaded (a --dataset file's are "
             "standardised with its training statistics).")] = None,
    momentum: Annotated[float, typer.Option(help="SGD momentum.")] = 0.9,
    weight_decay: Annotated[float, typer.Option(help="Weight decay (SGD: L2; AdamW: decoupled).")] = 0.0,
    schedule: Annotated[str, typer.Option(
        help=f"Learning-rate schedule, one of {', '.join(SCHEDULES)} (cosine: to 0 at the end; step: x0.1 at 50% "
             "and 75% of the run), following the fraction of the run done.")] = "cosine",
    warmup_steps: Annotated[int, typer.Option(help="Steps of linear learning-rate warm-up.")] = 0,
    augment: Annotated[bool, typer.Option(help="Random 2-pixel shifts and horizontal flips (image data only).")]
    = False,
    validation: Annotated[float, typer.Option(
        help="Stratified fraction of the training data held out to pick the target and say when a run reaches "
             "it; the test split chooses nothing.")] = 0.1,
    label_noise: Annotated[float, typer.Option(
        help="Fraction of training labels flipped to another class (symmetric; saved in label_noise.npz).")] = 0.0,
    noise_seed: Annotated[str, typer.Option(
        help=f"One of {', '.join(NOISE_SEEDS)}: a new noise draw per seed, or one for all seeds.")] = "per-seed",
    imbalance: Annotated[float | None, typer.Option(
        help="Subsample training classes geometrically: the last class keeps this fraction, class 0 all.")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Where the data files are (fashion-mnist: the idx files; shuttle: Shuttle.rda or its dpkg -x dir).")]
    = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of a CSV or parquet file.")] = None,
    test_fraction: Annotated[float, typer.Option(help="Stratified test split when the data has none.")] = 0.25,
    data_seed: Annotated[int, typer.Option(help="Seed of the splits, the imbalance and the label noise.")] = 0,
    train_subset: Annotated[int | None, typer.Option(
        help="Train on a stratified subset of this many training samples (before the validation split).")] = None,
    evals_per_epoch: Annotated[int, typer.Option(help="Validation and test evaluations per epoch.")] = 4,
    test_curve: Annotated[bool, typer.Option(
        help="Evaluate the test set at every evaluation (a curve); without, only at the end (cheaper).")] = True,
    threads: Annotated[int, typer.Option(help="torch threads per run.")] = 1,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per run.")] = True,
) -> None:
    """Run mining strategies side by side on real data, seeds x strategies, and write tables and plots to OUT."""
    from hardmine.experiments.api import compare as run_compare
    from hardmine.experiments.data import load_dataset, stratified_subset
    from hardmine.experiments.metrics import check_metric
    from hardmine.experiments.progress import RunProgress
    from hardmine.experiments.report import print_summary
    from hardmine.experiments.tuning import parse_lr_grid
    from hardmine.experiments.validation import load_validation_file

    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"--lr must be a finite number > 0, got {lr}")
    for name, value in (("--weight-decay", weight_decay), ("--label-noise", label_noise), ("--momentum", momentum)):
        if value is not None:
            _finite(name, value)
    grid = parse_lr_grid(lr_grid)
    if metric is not None:
        check_metric(metric)
    if data_seed < 0:
        raise ValueError(f"--data-seed must be >= 0, got {data_seed}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be in (0, 1), got {test_fraction}")
    data = load_dataset(dataset, data_dir, label_column, test_fraction, data_seed)
    if train_subset is not None:
        data = stratified_subset(data, train_subset, data_seed)
    make_model = model_factory(model, data.input_shape, data.num_classes, hidden)
    import torch

    val_set = None
    if validation_file is not None:
        x_val, y_val = load_validation_file(validation_file, data, dataset, label_column, test_fraction, data_seed)
        val_set = torch.utils.data.TensorDataset(torch.from_numpy(x_val), torch.from_numpy(y_val))
    train_set = torch.utils.data.TensorDataset(torch.from_numpy(data.x_train), torch.from_numpy(data.y_train))
    test_set = torch.utils.data.TensorDataset(torch.from_numpy(data.x_test), torch.from_numpy(data.y_test))
    with RunProgress(epochs, enabled=progress) as bars:
        results = run_compare(
            make_model, train_set, test_set, strategies=strategies, seeds=seeds, epochs=epochs, out=out,
            optimizer=optimizer, batch_size=batch_size, lr=lr, lr_grid=grid, lr_extend=lr_extend,
            tune=tune, metric=metric,
            val_set=val_set, momentum=momentum, weight_decay=weight_decay,
            schedule=schedule, warmup_steps=warmup_steps, augment=augment, validation=validation,
            label_noise=label_noise, noise_seed_mode=noise_seed, imbalance=imbalance, data_seed=data_seed,
            classes=data.classes, name=data.name, model_label=model,
            evals_per_epoch=evals_per_epoch, test_curve=test_curve, threads=threads, on_run_start=bars.start,
            verbose=False, argv=["hardmine", *sys.argv[1:]],
            extra_setup={"hidden": hidden, "train_subset": train_subset, "test_fraction": test_fraction,
                         "validation_file": None if validation_file is None else str(validation_file)})
    console = Console()
    print_summary(results, console)
    console.print(f"wrote {out}/results.json, summary.csv, report.html and the plots", markup=False)


@user_errors_exit_2
def report(
    out: Annotated[Path, typer.Argument(help="A directory written by `hardmine compare`.")],
) -> None:
    """Re-render the table, summary.csv and the plots from OUT/results.json, and write OUT/report.html."""
    from hardmine.experiments.report import print_summary, write_html
    from hardmine.experiments.results import read_results, write_results
    from hardmine.experiments.runner import render_plots, resummarize

    results = resummarize(read_results(out))
    write_results(out, results)
    render_plots(out, results)
    path = write_html(out, results)
    console = Console()
    print_summary(results, console)
    console.print(f"wrote {path}", markup=False)
