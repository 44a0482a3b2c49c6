"""`compare` and `report` through a typer app, and `hm.compare` on a user's model: files, resuming, bad input."""

import csv
import html
import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import typer
from typer.testing import CliRunner

import hardmine as hm
from hardmine.datasets.digits import load_digits
from hardmine.experiments.commands import compare, report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HERE = Path(__file__).parent
ARGS = ("--dataset", "digits", "--strategies", "uniform,ohem:keep=0.5", "--seeds", 2, "--epochs", 2, "--no-progress")


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    app.command()(compare)
    app.command()(report)
    return app


def invoke(app, *args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def compared(app, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "digits"
    result = invoke(app, "compare", "--out", out, *ARGS)
    assert result.exit_code == 0, result.output
    return out, result


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_compare_writes_consistent_files(compared):
    out, result = compared
    results = json.loads((out / "results.json").read_text())
    assert results["strategies"] == ["uniform", "ohem:keep=0.5"] and results["seeds"] == [0, 1]
    assert results["target"]["metric"] == "accuracy" and results["target"]["split"] == "validation"
    assert 0.5 < results["target"]["value"] <= 1.0
    n = results["dataset"]["n_train"]
    assert results["dataset"]["n_val"] > 0 and n + results["dataset"]["n_val"] == 1346  # digits' 75% train part
    rows = list(csv.DictReader((out / "summary.csv").open()))
    for column in ("strategy", "test_acc_mean", "test_acc_std", "macro_f1_mean", "reached", "compute_to_target",
                   "compute_total", "forwards", "backwards", "seconds_to_target"):
        assert column in rows[0]
    for row, summary in zip(rows, results["summary"]):
        assert row["strategy"] == summary["strategy"] and float(row["test_acc_mean"]) == summary["test_acc_mean"]
        assert row["compute_to_target"] == ("" if summary["compute_to_target"] is None
                                            else repr(summary["compute_to_target"]))
    for record in results["runs"]:
        curve = record["curve"]
        assert len(curve["val_acc"]) == len(curve["test_acc"]) == len(curve["compute"]) == 1 + 2 * 4
        assert curve["test_acc"][-1] == record["test_acc"] and curve["compute"][-1] == record["compute"]
        assert record["compute"] == record["forwards"] + 2 * record["backwards"]
        assert np.all(np.diff(curve["compute"]) > 0)
        assert 0.0 < record["hardmine_fraction"] < 1.0
    uniform, ohem = results["runs"][0], results["runs"][2]
    assert uniform["forwards"] == uniform["backwards"] == 2 * n
    assert ohem["backwards"] < 0.6 * uniform["backwards"] and ohem["forwards"] > 1.4 * uniform["forwards"]
    assert uniform["test_acc"] > 0.5  # it really learned
    for name in ("accuracy.png", "accuracy_time.png", "per_class_recall.png", "cartography.png"):
        width, height = png_size(out / name)
        assert width > 300 and height > 200 and (out / name).stat().st_size > 10_000
    page = (out / "report.html").read_text()
    images = len([p for p in out.glob("*.png")])
    assert page.count("data:image/png;base64,") == images and "ohem:keep=0.5" in page
    assert page.index("Verdict") < page.index("<table") < page.index("What the columns mean")
    for header in ("compute to target", "reached", "vs uniform (95% CI)", "hardmine time"):
        assert f"<dt>{header}</dt>" in page
    assert "compute to target" in result.output and "Target: validation accuracy" in result.output
    assert result.stdout.startswith("recommendation: ") and "too few seeds (2)" in result.stdout
    assert page.index("<strong>" + html.escape(results["recommendation"])) < page.index("<table")
    assert "tuning compute" in page and "<dt>lr</dt>" in page
    assert not [p for p in out.rglob("*.tmp")]


@pytest.mark.parametrize("columns", [80, 100])
def test_the_terminal_output_fits_columns(app, compared, columns):
    out, _ = compared
    result = CliRunner().invoke(app, ["compare", "--out", str(out), *map(str, ARGS)], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("recommendation: ")  # one line, first
    table = lines[lines.index(next(line for line in lines if line.startswith("strategy"))):]
    assert len(table) > 4 and all(len(line) <= columns for line in lines[1:]), max(lines[1:], key=len)
    assert any("ohem:keep=0.5" in line for line in table)


def test_progress_without_a_terminal_is_one_whole_line_per_run():
    import io

    from rich.console import Console

    from hardmine.experiments.progress import RunProgress

    stream = io.StringIO()
    with RunProgress(3, console=Console(file=io.StringIO()), stream=stream) as bars:
        for label in ("difficulty reference for the slices (uniform)", "importance:normalize=none lr=0.1 (lr grid)"):
            on_epoch = bars.start(label, 0)
            for epoch in range(3):
                on_epoch(epoch, 0.9 + epoch / 100)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "…" not in stream.getvalue()
    assert lines[1].startswith("[2] importance:normalize=none lr=0.1 (lr grid) seed 0: 3 epochs, validation acc 0.9200")


def test_a_validation_file(app, tmp_path):
    digits = load_digits()
    np.savez(tmp_path / "val.npz", x=digits.x_test, y=digits.y_test)
    out = tmp_path / "out"
    result = invoke(app, "compare", "--out", out, "--strategies", "uniform", "--seeds", 1, "--epochs", 1,
                    "--no-progress", "--no-tune", "--validation-file", tmp_path / "val.npz", "--metric", "macro_f1")
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"]["n_val"] == digits.y_test.size and results["setup"]["validation"] == "val_set"
    assert results["dataset"]["n_train"] == digits.y_train.size and results["target"]["metric"] == "macro_f1"
    assert "(untuned: differences may be learning-rate effects)" in result.stdout.splitlines()[0]


def test_a_validation_file_of_a_file_data_set_is_standardised_like_its_training_part(tmp_path):
    from hardmine.experiments.data import load_dataset
    from hardmine.experiments.validation import load_validation_file

    rng = np.random.default_rng(0)
    x, y = rng.normal(5.0, 3.0, size=(60, 4)), np.array(["a", "b", "c"] * 20)
    np.savez(tmp_path / "data.npz", X=x, y=y)
    data = load_dataset(str(tmp_path / "data.npz"), test_fraction=0.25, seed=0)
    np.savez(tmp_path / "val.npz", x=x, y=y)  # the same raw rows
    x_val, y_val = load_validation_file(tmp_path / "val.npz", data, str(tmp_path / "data.npz"), None, 0.25, 0)
    rows = [i for i in range(60) if any(np.allclose(x_val[i], t, atol=1e-5) for t in data.x_train)]
    assert len(rows) == data.y_train.size  # the training rows come out exactly as the loader standardised them
    assert [data.classes[c] for c in y_val] == list(y)


def test_rerun_resumes_and_extends(app, compared):
    out, _ = compared
    runs = sorted(out.glob("runs/*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in runs}
    before = json.loads((out / "results.json").read_text())
    result = invoke(app, "compare", "--out", out, *ARGS)
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in runs} == stamps  # nothing retrained
    assert json.loads((out / "results.json").read_text())["summary"] == before["summary"]
    changed = invoke(app, "compare", "--out", out, "--dataset", "digits", "--epochs", 3, "--no-progress")
    assert changed.exit_code == 2 and "different set-up" in changed.output and "config" in changed.output


def test_report_rerenders_from_results(app, compared):
    out, _ = compared
    for name in ("accuracy.png", "report.html", "summary.csv"):
        (out / name).unlink()
    result = invoke(app, "report", out)
    assert result.exit_code == 0, result.output
    assert png_size(out / "accuracy.png")[0] > 300
    assert (out / "report.html").read_text().count("data:image/png;base64,") == len(list(out.glob("*.png")))
    assert (out / "summary.csv").read_text().startswith("strategy,test_acc_mean,test_acc_std,macro_f1_mean")


def test_a_truncated_file_is_named(app, compared, tmp_path):
    out, _ = compared
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in out.rglob("*"):
        if path.is_file():
            (copy / path.relative_to(out)).parent.mkdir(parents=True, exist_ok=True)
            (copy / path.relative_to(out)).write_bytes(path.read_bytes())
    victim = min((copy / "runs").glob("ohem*seed1.npz"))
    victim.write_bytes(victim.read_bytes()[:100])
    result = invoke(app, "compare", "--out", copy, *ARGS)
    assert result.exit_code == 2 and victim.name in result.stderr and "cut short" in result.stderr
    record = min((copy / "runs").glob("uniform*seed0.json"))
    record.write_text(record.read_text()[:50])
    assert record.name in invoke(app, "compare", "--out", copy, *ARGS).stderr
    (copy / "results.json").write_text("{")
    result = invoke(app, "report", copy)
    assert result.exit_code == 2 and "results.json" in result.stderr


def bad_inputs(tmp):
    digits = load_digits()
    np.savez(tmp / "val_classes.npz", x=digits.x_test[digits.y_test < 9], y=digits.y_test[digits.y_test < 9])
    np.savez(tmp / "val_shape.npz", x=np.ones((10, 64), np.float32), y=np.arange(10))
    np.savez(tmp / "val_extra.npz", x=digits.x_test[:20], y=np.arange(20))
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]}).to_csv(tmp / "ok.csv", index=False)
    np.savez(tmp / "one.npz", X=np.ones((10, 2)), y=np.zeros(10))
    pd.DataFrame({"a": [1.0, 2.0], "y": [0, 1]}).to_csv(tmp / "two.csv", index=False)
    np.savez(tmp / "rare.npz", X=np.ones((21, 2)), y=np.array([0] * 10 + [1] * 10 + [2]))
    (tmp / "dir.npz").mkdir(exist_ok=True)
    np.savez(tmp / "objects.npz", X=np.array([{"a": 1}] * 10, dtype=object), y=np.arange(10))
    (tmp / "cut.npz").write_bytes((tmp / "objects.npz").read_bytes()[:50])
    (tmp / "empty.csv").write_text("")
    pd.DataFrame({"a": [], "y": []}).to_csv(tmp / "header_only.csv", index=False)
    return [
        (["--dataset", tmp / "dir.npz"], "is a directory, not a data file"),
        (["--dataset", tmp / "objects.npz"], "objects.npz: an array holds Python objects"),
        (["--dataset", tmp / "cut.npz"], "cut.npz cannot be read as .npz"),
        (["--dataset", tmp / "empty.csv", "--label-column", "y"], "empty.csv cannot be read as a table"),
        (["--dataset", tmp / "header_only.csv", "--label-column", "y"], "header_only.csv has no rows"),
        (["--seeds", "1000000000"], "--seeds must be in [1, 100]"),
        (["--validation-file", tmp / "dir.npz"], "--validation-file"),
        (["--strategies", "uniform,fancy"], "unknown strategy 'fancy'"),
        (["--strategies", "importance:alpah=1"], "unknown parameter 'alpah'"),
        (["--strategies", "ohem+noise_gard"], "unknown guard 'noise_gard'"),
        (["--dataset", tmp / "missing.csv", "--label-column", "y"], "does not exist"),
        (["--dataset", tmp / "ok.csv", "--label-column", "label"], "label column 'label' is not in ok.csv"),
        (["--dataset", tmp / "one.npz"], "1 class"),
        (["--dataset", "fashion-mnist", "--data-dir", tmp], "apt-get install dataset-fashion-mnist"),
        (["--dataset", "shuttle", "--data-dir", tmp], "apt-get download r-cran-mlbench"),
        (["--dataset", tmp / "ok.csv", "--label-column", "y", "--model", "cnn"], "needs images"),
        (["--dataset", tmp / "rare.npz", "--test-fraction", "0.2"], "fewer than 2 training samples"),
        (["--label-noise", "1.5"], "--label-noise must be in [0, 1), got 1.5"),
        (["--label-noise", "-0.1"], "--label-noise must be a finite number >= 0, got -0.1"),
        (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
        (["--lr", "-1"], "--lr must be a finite number > 0, got -1.0"),
        (["--lr", "inf"], "--lr must be a finite number > 0, got inf"),
        (["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
        (["--weight-decay", "-0.5"], "--weight-decay must be a finite number >= 0, got -0.5"),
        (["--validation", "0"], "--validation must be in (0, 1)"),
        (["--validation", "1.2"], "--validation must be in (0, 1)"),
        (["--optimizer", "adam"], "--optimizer must be one of ['sgd', 'adamw'], got 'adam'"),
        (["--schedule", "linear"], "--schedule must be one of"),
        (["--noise-seed", "random", "--label-noise", "0.1"], "--noise-seed must be one of"),
        (["--seeds", "0"], "--seeds must be in [1, 100] (each seed trains every strategy), got 0"),
        (["--data-seed", "-1"], "--data-seed must be >= 0, got -1"),
        (["--dataset", tmp / "two.csv", "--label-column", "y"], "too few to split"),
        (["--warmup-steps", "-1"], "--warmup-steps must be an integer >= 0"),
        (["--dataset", tmp / "ok.csv", "--label-column", "y", "--augment"], "--augment needs images"),
        (["--train-subset", "100000"], "--train-subset must be an integer in [2, 1346)"),
        (["--model", "resnet"], "--model must be one of"),
        (["--model", "no_such_module_xyz:factory"], "--model 'no_such_module_xyz:factory': cannot import"),
        (["--model", "tests_helpers:missing"], "has no callable 'missing'"),
        (["--model", "tests_helpers:not_a_module"], "must return a torch.nn.Module, got str"),
        (["--lr-grid", "0,1,2"], "--lr-grid values must be finite numbers > 0 (factors of the given lr), got 0.0"),
        (["--lr-grid", "-0.5,1"], "--lr-grid values must be finite numbers > 0 (factors of the given lr), got -0.5"),
        (["--lr-grid", "1,nan"], "--lr-grid values must be finite numbers > 0 (factors of the given lr), got nan"),
        (["--lr-grid", "1,inf"], "got inf"),
        (["--lr-grid", "x2"], "--lr-grid must be comma-separated numbers (factors of --lr), got 'x2'"),
        (["--metric", "top5"], "--metric must be one of ['accuracy', 'balanced_accuracy', 'macro_f1'], got 'top5'"),
        (["--validation-file", tmp / "val_classes.npz"], "--validation-file val_classes.npz: its classes differ from "
                                                         "the training data's"),
        (["--validation-file", tmp / "val_shape.npz"], "--validation-file val_shape.npz: samples have shape (64,) "
                                                       "but the training samples (1, 8, 8)"),
        (["--validation-file", tmp / "val_extra.npz"], "(not in the training data: ['10', '11'"),
        (["--validation-file", tmp / "none.npz"], "--validation-file"),
        (["--validation-file", tmp / "ok.csv"], "--validation-file must be an .npz file"),
    ]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(app, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    for args, message in bad_inputs(tmp_path):
        out = tmp_path / "out"
        result = invoke(app, "compare", "--out", out, "--epochs", 1, "--no-progress", *args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, lines)
        assert "Traceback" not in result.output
        assert not out.exists()


def test_report_of_a_missing_directory(app, tmp_path):
    result = invoke(app, "report", tmp_path / "none")
    assert result.exit_code == 2 and "results.json" in result.stderr and "does not exist" in result.stderr


def test_help_lists_the_registered_names_and_the_whole_default(app):
    text = " ".join(invoke(app, "compare", "--help").output.replace("│", " ").split())  # lines wrap in a box
    for name in ("selective_backprop", "prune_easy", "ohem", "focal", "noise_guard", "class_balance", "weight_cap"):
        assert name in text
    assert ("Default: uniform, ohem, focal, importance, selective_backprop, prune_easy; on imbalanced classes also "
            "class_balanced, class_weighted, logit_adjusted, importance+class_balance.") in text


def digits_sets():
    data = load_digits()
    return (torch.utils.data.TensorDataset(torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)),
            torch.utils.data.TensorDataset(torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)), data)


class Pairs(torch.utils.data.Dataset):
    """A plain map-style data set of (x, y) pairs, read item by item."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def _comparable(results):
    return [(r["strategy"], r["seed"], r["test_acc"], r["forwards"], r["backwards"], r["curve"]["val_acc"])
            for r in results["runs"]]


def test_hm_compare_with_a_user_factory_writes_what_the_cli_writes(app, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    import tests_helpers

    cli = invoke(app, "compare", "--out", tmp_path / "cli", "--model", "tests_helpers:factory", *ARGS)
    assert cli.exit_code == 0, cli.output
    train_set, _, data = digits_sets()
    test_set = Pairs(data.x_test, data.y_test)  # item by item, through the generic path
    results = hm.compare(tests_helpers.factory, train_set, test_set, strategies="uniform,ohem:keep=0.5", seeds=2,
                         epochs=2, out=tmp_path / "api", classes=data.classes, name="digits")
    def names(d):
        return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
    assert names(tmp_path / "api") == names(tmp_path / "cli")
    from_cli = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert _comparable(results) == _comparable(from_cli)
    assert results["target"] == from_cli["target"]
    assert from_cli["config"]["model"] == "tests_helpers:factory"


def test_hm_compare_checks_its_arguments_before_writing(tmp_path):
    train_set, test_set, _data = digits_sets()
    out = tmp_path / "out"
    def mlp(seed):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    cases = [
        ({"make_model": lambda seed: torch.nn.Linear(3, 10)}, "the model fails on samples of shape (1, 8, 8)"),
        ({"make_model": lambda seed: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))},
         "the model must return logits [batch, 10], got (2, 4)"),
        ({"train_set": Pairs([np.ones((1, 8, 8), np.float32)] * 4, [0, 1, 0, 1]), "test_set": [(1, 2, 3)]},
         "test_set[0] must be a pair (x, y), got tuple of length 3"),
        ({"train_set": [np.ones(3)]}, "train_set[0] must be a pair (x, y)"),
        ({"validation": 0.0}, "--validation must be in (0, 1)"),
        ({"lr": float("nan")}, "--lr must be a finite number > 0, got nan"),
        ({"seeds": [0, 0]}, "seeds given twice"),
        ({"optimizer": "rmsprop"}, "--optimizer must be one of"),
        ({"strategies": ["uniform", "nonsense"]}, "unknown strategy 'nonsense'"),
    ]
    for kwargs, message in cases:
        args = {"make_model": mlp, "train_set": train_set, "test_set": test_set, "epochs": 1, "out": out, **kwargs}
        with pytest.raises((ValueError, TypeError)) as err:
            hm.compare(args.pop("make_model"), args.pop("train_set"), args.pop("test_set"), **args)
        assert message in str(err.value), (kwargs, str(err.value))
        assert not out.exists()


def test_report_of_results_from_an_older_compare_says_so(app, tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.json").write_text(json.dumps({"runs": [{"strategy": "uniform", "curve": {}}],
                                                              "config": {"evals_per_epoch": 4}}))
    result = invoke(app, "report", tmp_path / "old")
    assert result.exit_code == 2 and "older hardmine compare" in result.stderr


def test_a_run_that_stops_early_still_gets_its_line():
    import io

    from rich.console import Console

    from hardmine.experiments.progress import RunProgress

    stream = io.StringIO()
    with RunProgress(3, console=Console(file=io.StringIO()), stream=stream) as bars:
        bars.start("uniform lr=10", 0)(0, 0.1)  # diverged during its second epoch
        bars.start("uniform lr=20", 0)  # diverged during its first
        bars.start("ohem", 1)(2, 0.9)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[1] uniform lr=10 seed 0: 1 epochs, validation acc 0.1000, 0.0 s (stopped: 3 epochs planned, " \
                       "diverged)"
    assert lines[1].startswith("[2] uniform lr=20 seed 0: stopped") and lines[2].startswith("[3] ohem seed 1: 3 epochs")


@pytest.mark.parametrize("content, message", [
    ("[]", "must be a JSON object written by hardmine compare, got a list"),
    ("{}", "holds no runs"),
    ("edit:nan", "has test_acc=nan"),
    ("edit:drop", "has test_acc=None"),
])
def test_report_refuses_results_that_are_not_a_comparisons_in_one_line(app, compared, tmp_path, content, message):
    out = tmp_path / "edited"
    out.mkdir()
    if content.startswith("edit:"):
        results = json.loads((compared[0] / "results.json").read_text())
        if content == "edit:nan":
            results["runs"][1]["test_acc"] = float("nan")
        else:
            del results["runs"][1]["test_acc"]
        content = json.dumps(results)
    (out / "results.json").write_text(content)
    result = invoke(app, "report", out)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_a_full_disk_is_one_line_not_a_traceback(app, tmp_path, monkeypatch):
    import errno

    import hardmine.experiments.results as results_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o" / "setup.json"))

    monkeypatch.setattr(results_module, "write_json", full)
    result = invoke(app, "compare", "--out", tmp_path / "o", "--seeds", "1", "--epochs", "1", "--no-tune")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip() == f"error: cannot write or read {str(tmp_path / 'o' / 'setup.json')!r}: No space " \
        "left on device"
