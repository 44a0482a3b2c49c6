"""`compare` and `report` through a typer app: the files a comparison writes, resuming, and bad input."""

import csv
import json
import struct

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from hardmine.experiments.commands import compare, report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    app.command()(compare)
    app.command()(report)
    return app


def invoke(app, *args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def compared(app, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "digits"
    result = invoke(app, "compare", "--out", out, "--dataset", "digits", "--strategies", "uniform,ohem:keep=0.5",
                    "--seeds", 1, "--epochs", 2, "--no-progress")
    assert result.exit_code == 0, result.output
    return out, result


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_compare_writes_consistent_files(compared):
    out, result = compared
    results = json.loads((out / "results.json").read_text())
    assert results["strategies"] == ["uniform", "ohem:keep=0.5"] and results["seeds"] == [0]
    assert results["versions"]["torch"] and results["config"]["epochs"] == 2
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert list(rows[0])[:4] == ["strategy", "test_acc_mean", "test_acc_std", "macro_f1_mean"]
    for row, summary in zip(rows, results["summary"]):
        assert row["strategy"] == summary["strategy"]
        assert float(row["test_acc_mean"]) == summary["test_acc_mean"]
        assert float(row["macro_f1_mean"]) == summary["macro_f1_mean"]
    for record in results["runs"]:
        assert len(record["curve"]["test_acc"]) == 1 + 2 * 4
        assert record["curve"]["test_acc"][-1] == record["test_acc"]
        assert np.all(np.diff(record["curve"]["backprops"]) > 0)
        assert 0.0 < record["hardmine_fraction"] < 1.0
    uniform, ohem = results["runs"]
    assert uniform["backprops"] == 2 * results["dataset"]["n_train"]
    assert ohem["backprops"] < 0.6 * uniform["backprops"]  # OHEM back-propagates half of each batch
    assert uniform["test_acc"] > 0.5  # it really learned
    assert len(results["reference"]["slice_loss_edges"]) == 5
    for name in ("accuracy.png", "per_class_recall.png", "slice_accuracy.png", "cartography.png"):
        width, height = png_size(out / name)
        assert width > 300 and height > 200 and (out / name).stat().st_size > 10_000
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "ohem:keep=0.5" in page
    assert "ohem:keep=0.5" in result.output and "test acc" in result.output
    assert not [p for p in out.rglob("*.tmp")]


def test_rerun_resumes_and_extends(app, compared, tmp_path):
    out, _ = compared
    runs = sorted(out.glob("runs/*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in runs}
    before = json.loads((out / "results.json").read_text())
    result = invoke(app, "compare", "--out", out, "--dataset", "digits", "--strategies", "uniform,ohem:keep=0.5",
                    "--seeds", 1, "--epochs", 2, "--no-progress")
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in runs} == stamps  # nothing retrained
    after = json.loads((out / "results.json").read_text())
    assert after["summary"] == before["summary"]
    changed = invoke(app, "compare", "--out", out, "--dataset", "digits", "--epochs", 3, "--no-progress")
    assert changed.exit_code == 2 and "different set-up" in changed.output and "config" in changed.output


def test_report_rerenders_from_results(app, compared):
    out, _ = compared
    for name in ("accuracy.png", "report.html", "summary.csv"):
        (out / name).unlink()
    result = invoke(app, "report", out)
    assert result.exit_code == 0, result.output
    assert png_size(out / "accuracy.png")[0] > 300
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 4
    assert (out / "summary.csv").read_text().startswith("strategy,test_acc_mean,test_acc_std,macro_f1_mean")


def bad_inputs(tmp):
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]}).to_csv(tmp / "ok.csv", index=False)
    np.savez(tmp / "one.npz", X=np.ones((10, 2)), y=np.zeros(10))
    return [
        (["--strategies", "uniform,fancy"], "unknown strategy 'fancy'"),
        (["--strategies", "importance:alpah=1"], "unknown parameter 'alpah'"),
        (["--strategies", "ohem+noise_gard"], "unknown guard 'noise_gard'"),
        (["--dataset", tmp / "missing.csv", "--label-column", "y"], "does not exist"),
        (["--dataset", tmp / "ok.csv", "--label-column", "label"], "label column 'label' is not in ok.csv"),
        (["--dataset", tmp / "one.npz"], "1 class"),
        (["--dataset", "fashion-mnist", "--data-dir", tmp], "apt-get install dataset-fashion-mnist"),
        (["--dataset", "shuttle", "--data-dir", tmp], "apt-get download r-cran-mlbench"),
        (["--dataset", tmp / "ok.csv", "--label-column", "y", "--model", "cnn"], "needs images"),
        (["--label-noise", "1.5"], "--label-noise must be in"),
        (["--model", "resnet"], "--model must be one of"),
    ]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(app, tmp_path):
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
