"""Learning-rate tuning in compare: the grid, the choice on validation, the tuning runs' compute kept apart,
resuming; the annealing horizon; the default learning rate and metric."""

import json
import math

import pytest
import torch

import hardmine as hm
from hardmine.datasets.digits import load_digits
from hardmine.experiments.spec import parse_spec
from hardmine.experiments.tuning import Tuning, check_lr_grid, choose_factor, parse_lr_grid, with_horizon


def test_choose_factor_takes_the_best_and_breaks_ties_towards_the_given_rate():
    assert choose_factor({0.5: 0.90, 1.0: 0.91, 2.0: 0.95}) == 2.0
    assert choose_factor({0.5: 0.95, 1.0: 0.95, 2.0: 0.95}) == 1.0
    assert choose_factor({0.5: 0.95, 2.0: 0.95, 4.0: 0.95}) == 0.5  # |log 0.5| == |log 2|: the smaller
    assert choose_factor({0.25: 0.95, 2.0: 0.95}) == 2.0  # nearest to the given rate
    assert choose_factor({0.5: math.nan, 1.0: 0.2, 2.0: math.nan}) == 1.0  # diverged or collapsed: lowest
    assert choose_factor({0.5: math.nan, 2.0: math.nan}) == 0.5


@pytest.mark.parametrize(("text", "message"), [
    ("0,1", "--lr-grid values must be finite numbers > 0 (factors of the given lr), got 0.0"),
    ("-1,1", "got -1.0"), ("nan", "got nan"), ("inf,1", "got inf"), ("a,b", "--lr-grid must be comma-separated"),
    ("1,1", "--lr-grid holds a value twice"), ("", "--lr-grid must be comma-separated"),
])
def test_bad_grids_are_refused(text, message):
    with pytest.raises(ValueError) as err:
        parse_lr_grid(text)
    assert message in str(err.value)


def test_grid_checks():
    assert parse_lr_grid("0.5, 1,2") == (0.5, 1.0, 2.0)
    tuning = Tuning((0.5, 1.0, 2.0), extend=2)
    assert tuning.beyond([0.5, 1.0, 2.0], 2.0) == 4.0 and tuning.beyond([0.5, 1.0, 2.0], 0.5) == 0.25
    assert tuning.beyond([0.5, 1.0, 2.0], 1.0) is None  # inside: nothing to extend
    assert tuning.beyond([0.5, 1.0, 2.0, 4.0], 4.0) == 8.0 and tuning.beyond([0.5, 1.0, 2.0, 4.0, 8.0], 8.0) is None
    assert Tuning(enabled=False).beyond([1.0], 1.0) is None and Tuning(extend=0).beyond([0.5, 1.0, 2.0], 2.0) is None
    for bad in (-1, 9, 1.5, True):
        with pytest.raises(ValueError, match="lr_extend"):
            Tuning(extend=bad)
    assert Tuning((1, 3)).factors() == (1.0, 3.0) and Tuning(enabled=False).factors() == (1.0,)
    for bad in ((), (0.0,), (True,), "1,2"):
        with pytest.raises(ValueError, match="lr_grid"):
            check_lr_grid(bad, "lr_grid")


def test_the_annealing_horizon_follows_compares_epochs():
    assert with_horizon(parse_spec("prune_easy"), 8).label == "prune_easy:epochs=8"
    assert with_horizon(parse_spec("prune_easy:epochs=20"), 8).label == "prune_easy:epochs=20"  # given: kept
    assert with_horizon(parse_spec("uniform"), 8).label == "uniform"
    assert with_horizon(parse_spec("ohem"), 8).label == "ohem"


def digits_sets():
    data = load_digits()
    def pairs(x, y):
        return torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    return pairs(data.x_train, data.y_train), pairs(data.x_test, data.y_test)


def mlp(seed):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """lr 0.002 barely moves in 2 epochs, x50 (0.1) learns, and x2500 (lr 5, the grid extended one step past its
    best edge) diverges or does worse: tuning must pick x50 for both strategies."""
    out = tmp_path_factory.mktemp("tune") / "out"
    train_set, test_set = digits_sets()
    results = hm.compare(mlp, train_set, test_set, strategies="uniform,ohem:keep=0.5", seeds=2, epochs=2, out=out,
                         lr=0.002, lr_grid=(1, 50), verbose=False)
    return out, results


def test_tuning_picks_the_rate_with_the_best_validation_metric(tuned):
    _, results = tuned
    tuning = results["tuning"]
    assert tuning["enabled"] and tuning["grid"] == [1.0, 50.0] and tuning["seed"] == 0
    for label in ("uniform", "ohem:keep=0.5"):
        scores = tuning["validation_scores"][label]
        assert scores["0.1"] > scores["0.002"] + 0.2 and "0.002" in scores["failed"]
        assert scores["5"] is None or scores["5"] < scores["0.1"]  # the extension past the edge did worse
        assert tuning["chosen"][label] == {"lr": pytest.approx(0.1), "factor": 50.0}
    assert {(r["strategy"], r["seed"], round(r["lr"], 9)) for r in results["runs"]} == {
        ("uniform", 0, 0.1), ("uniform", 1, 0.1), ("ohem:keep=0.5", 0, 0.1), ("ohem:keep=0.5", 1, 0.1)}
    assert {(r["strategy"], r["seed"], round(r["lr"], 9)) for r in results["tuning_runs"]} == {
        ("uniform", 0, 0.002), ("ohem:keep=0.5", 0, 0.002), ("uniform", 0, 5.0), ("ohem:keep=0.5", 0, 5.0)}
    assert tuning["at_edge"] == [] and tuning["extend"] == 2
    rows = {row["strategy"]: row for row in results["summary"]}
    assert rows["uniform"]["lr"] == pytest.approx(0.1) and rows["ohem:keep=0.5"]["lr_factor"] == 50.0


def test_tuning_compute_is_counted_apart(tuned):
    _, results = tuned
    base = results["baseline"]["compute"]
    assert base == pytest.approx(sum(r["compute"] for r in results["runs"] if r["strategy"] == "uniform") / 2)
    total = 0.0
    for row in results["summary"]:
        spent = sum(r["compute"] for r in results["tuning_runs"] if r["strategy"] == row["strategy"])
        assert spent > 0 and row["tuning_compute"] == pytest.approx(spent / base)
        judged = [r["compute"] for r in results["runs"] if r["strategy"] == row["strategy"]]
        assert row["compute_total"] == pytest.approx(sum(judged) / len(judged) / base)  # tuning runs not in it
        total += row["tuning_compute"]
    assert results["tuning"]["compute"] == pytest.approx(total)
    assert results["recommendation"] and "tuned" in results["recommendation"]


def test_a_rerun_resumes_and_untuned_reuses_the_given_rates_runs(tuned, tmp_path):
    out, results = tuned
    train_set, test_set = digits_sets()
    files = sorted(out.glob("runs/*.json"))
    assert len(files) == 9 and any("lr=0.002" in p.name for p in files) and any("lr=0.1" in p.name for p in files)
    stamps = {p: p.stat().st_mtime_ns for p in files}
    again = hm.compare(mlp, train_set, test_set, strategies="uniform,ohem:keep=0.5", seeds=2, epochs=2, out=out,
                       lr=0.002, lr_grid=(1, 50), verbose=False)
    assert {p: p.stat().st_mtime_ns for p in files} == stamps and again["summary"] == results["summary"]
    untuned = hm.compare(mlp, train_set, test_set, strategies="uniform", seeds=1, epochs=2, out=out, lr=0.002,
                         tune=False, verbose=False)
    assert {p: p.stat().st_mtime_ns for p in files} == stamps  # uniform seed 0 at 0.002 was a tuning run
    assert untuned["runs"][0]["lr"] == 0.002 and untuned["tuning_runs"] == []
    assert untuned["recommendation"].endswith("(untuned: differences may be learning-rate effects)")


def test_adamw_default_lr_imbalanced_metric_and_the_printed_summary(tmp_path, capsys):
    train_set, test_set = digits_sets()
    results = hm.compare(mlp, train_set, test_set, strategies="uniform,prune_easy", seeds=1, epochs=8,
                         out=tmp_path / "out", optimizer="adamw", imbalance=0.2, tune=False)
    assert results["config"]["lr"] == 1e-3 and "lr 0.001: the default for adamw (no lr given)" in results["notes"]
    assert results["target"]["metric"] == "balanced_accuracy"
    assert any(n.startswith("metric balanced_accuracy: the training classes' largest/smallest count ratio is")
               for n in results["notes"])
    assert "val_balanced_accuracy" in results["runs"][0]["curve"]
    assert results["summary"][0]["metric_mean"] == results["runs"][0]["test_balanced_accuracy"]
    found = " ".join(results["warnings"])
    assert "too few seeds (1)" in found and "small validation split" in found
    printed = capsys.readouterr()
    assert printed.out.startswith("recommendation: ") and "bal. acc" in printed.out
    assert "difficulty reference for the slices" in printed.err and "prune_easy lr=0.001 seed 0" in printed.err
    # prune_easy anneals over compare's 8 epochs (its default horizon is 10): the last epoch uses every sample
    run = next(r for r in results["runs"] if r["strategy"] == "prune_easy")
    curve, n = run["curve"], results["dataset"]["n_train"]
    last = [i for i, e in enumerate(curve["epoch"]) if 7 < e <= 8]
    assert curve["backwards"][last[-1]] - curve["backwards"][last[0] - 1] == n
    assert json.loads((tmp_path / "out" / "results.json").read_text())["recommendation"] == results["recommendation"]


def test_hm_compare_refuses_bad_tuning_metric_and_validation_sets(tmp_path):
    train_set, test_set = digits_sets()
    x, y = train_set.tensors
    other_shape = torch.utils.data.TensorDataset(torch.zeros(20, 3), torch.zeros(20, dtype=torch.long))
    fewer_classes = torch.utils.data.TensorDataset(x[y < 5], y[y < 5])
    out = tmp_path / "out"
    cases = [
        ({"lr_grid": (0.0, 1.0)}, "lr_grid values must be finite numbers > 0"),
        ({"lr_grid": (1.0, float("inf"))}, "got inf"),
        ({"metric": "f2"}, "--metric must be one of ['accuracy', 'balanced_accuracy', 'macro_f1'], got 'f2'"),
        ({"val_set": other_shape}, "val_set samples have shape (3,) but the training samples (1, 8, 8)"),
        ({"val_set": fewer_classes}, "val_set classes differ from the training set's: missing ['5', '6', '7', '8', "
                                     "'9']"),
        ({"optimizer": lambda p: torch.optim.SGD(p, lr=0.1), "lr": 0.1}, "a callable optimizer sets its own"),
        ({"tune": "yes"}, "tune must be True or False"),
    ]
    for kwargs, message in cases:
        with pytest.raises((ValueError, TypeError)) as err:
            hm.compare(mlp, train_set, test_set, epochs=1, out=out, verbose=False, **kwargs)
        assert message in str(err.value), (kwargs, str(err.value))
        assert not out.exists()


def test_a_given_validation_set_replaces_the_split(tmp_path):
    train_set, test_set = digits_sets()
    results = hm.compare(mlp, train_set, test_set, strategies="uniform", seeds=1, epochs=1, out=tmp_path / "o",
                         val_set=test_set, tune=False, verbose=False, optimizer=lambda p: torch.optim.SGD(p, lr=0.07))
    assert results["dataset"]["n_val"] == len(test_set) and results["dataset"]["n_train"] == len(train_set)
    assert results["setup"]["validation"] == "val_set" and results["config"]["lr"] == 0.07
