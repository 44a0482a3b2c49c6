"""The recommendation in words, on synthetic summary rows: never a strategy that ends worse beyond noise; the
alternatives are not mining; the warnings."""

import math

import numpy as np
import pytest

from hardmine.experiments.verdict import candidates, is_alternative, recommendation, warnings


def row(name, diff=0.0, low=None, high=None, compute=None, reached="3/3", seconds=None, collapsed=0, diverged=0):
    """A summary row: diff and its interval in accuracy units; compute: compute to target over uniform's own."""
    low = diff - 0.005 if low is None else low
    high = diff + 0.005 if high is None else high
    return {"strategy": name, "diff_vs_uniform": diff, "diff_low": low, "diff_high": high,
            "within_noise": bool(low <= 0 <= high), "compute_vs_uniform": compute, "reached": reached,
            "seconds_vs_uniform": seconds, "collapsed": collapsed, "diverged": diverged}


def results(rows, seeds=3, n_val=1000, tuned=True, runs=None, metric="accuracy"):
    uniform = {"strategy": "uniform", "diff_vs_uniform": 0.0, "diff_low": math.nan, "diff_high": math.nan,
               "within_noise": None, "compute_vs_uniform": 1.0, "reached": f"{seeds - 1}/{seeds}",
               "seconds_vs_uniform": 1.0, "collapsed": 0, "diverged": 0}
    return {"summary": [uniform, *rows], "seeds": list(range(seeds)), "dataset": {"n_val": n_val},
            "target": {"metric": metric, "value": 0.9}, "runs": runs or [],
            "tuning": {"enabled": tuned, "grid": [0.5, 1.0, 2.0], "chosen": {}}}


def test_the_headline_states_compute_against_uniforms_own_and_wall_time():
    text = recommendation(results([row("ohem", 0.01, compute=0.5, seconds=1.5)]))
    assert text == ("use ohem: reaches uniform's tuned accuracy with 2.0x less compute than uniform needs to reach "
                    "it, in 3/3 seeds, and ends +1.00 points (beyond noise); its wall time to target here is 1.5x "
                    "uniform's")


def test_a_strategy_that_ends_worse_beyond_noise_is_never_the_headline():
    rows = [row("prune_easy", -0.0018, -0.003, -0.0006, compute=0.1, seconds=0.1),  # fastest, but worse
            row("focal", 0.001, -0.004, 0.006, compute=0.8, seconds=0.9)]
    text = recommendation(results(rows))
    assert text.startswith("use focal:") and "within noise" in text and "prune_easy" not in text
    assert recommendation(results(rows[:1])).startswith("mining does not pay on this data: use uniform")


def test_random_rows_never_recommend_a_strategy_worse_beyond_noise():
    rng = np.random.default_rng(0)
    for _ in range(300):
        rows = []
        for i in range(int(rng.integers(1, 6))):
            diff = float(rng.normal(0, 0.01))
            half = float(rng.uniform(0.001, 0.02))
            compute = None if rng.random() < 0.3 else float(rng.uniform(0.2, 1.5))
            name = "class_weighted" if i == 0 and rng.random() < 0.3 else f"s{i}"
            rows.append(row(name, diff, diff - half, diff + half, compute=compute,
                            collapsed=int(rng.random() < 0.1)))
        text = recommendation(results(rows))
        named = text.split("use ", 1)[1].split(":", 1)[0].split(" ", 1)[0]
        chosen = [r for r in rows if r["strategy"] == named]
        if named != "uniform":
            r = chosen[0]
            assert not (r["within_noise"] is False and r["diff_vs_uniform"] < 0), (text, r)
            assert r["collapsed"] == 0
            assert r["within_noise"] is False or (r["compute_vs_uniform"] or 2) < 1


def test_a_better_alternative_means_mining_does_not_pay():
    rows = [row("ohem", 0.015, 0.01, 0.02, compute=0.6), row("class_balanced", 0.052, 0.04, 0.064, compute=0.9)]
    text = recommendation(results(rows, metric="balanced_accuracy"))
    assert text.startswith("mining does not pay on this data: use class_balanced (not mining): ")
    assert "uniform's tuned balanced accuracy" in text and "+5.20 points (beyond noise)" in text
    assert is_alternative("logit_adjusted:tau=1") and is_alternative("class_weighted+weight_cap")
    assert not is_alternative("importance:normalize=none")
    # a mining strategy that ends above beyond noise by more than the alternative wins
    rows[0] = row("ohem", 0.08, 0.07, 0.09, compute=0.6)
    assert recommendation(results(rows)).startswith("use ohem:")


def test_ranking_above_beyond_noise_first_then_compute():
    rows = [row("fast", 0.0, -0.01, 0.01, compute=0.3), row("sure", 0.01, 0.004, 0.016, compute=0.9),
            row("surer", 0.012, 0.008, 0.016, compute=None, reached="1/3")]
    assert [r["strategy"] for r in candidates(results(rows)["summary"])] == ["surer", "sure", "fast"]
    text = recommendation(results(rows))
    assert text.startswith("use surer: does not reach uniform's tuned accuracy in the median seed (1/3 seeds)")
    # a surer interval loses to one that ends higher with less compute (the interval's bound alone does not decide)
    rows = [row("ohem", 0.1307, 0.1105, 0.1509, compute=0.38), row("sb", 0.1494, 0.1078, 0.1911, compute=0.22)]
    assert recommendation(results(rows)).startswith("use sb: reaches uniform's tuned accuracy with 4.5x less")


def test_untuned_collapsed_and_slower_strategies():
    rows = [row("ohem", 0.0, -0.01, 0.01, compute=0.5, collapsed=1), row("focal", 0.0, -0.01, 0.01, compute=1.2)]
    text = recommendation(results(rows, tuned=False))
    assert text.startswith("mining does not pay on this data: use uniform")
    assert text.endswith("(untuned: differences may be learning-rate effects)")
    rows = [row("rho", 0.02, 0.01, 0.03, compute=1.6, seconds=2.0)]
    assert "with 1.6x the compute uniform needs to reach it" in recommendation(results(rows))


def test_one_seed_has_no_noise_to_judge():
    one = row("ohem", -0.01, math.nan, math.nan, compute=0.5)
    one["within_noise"] = None
    assert recommendation(results([one], seeds=1)).startswith("mining does not pay")
    one["diff_vs_uniform"] = 0.01
    assert "(1 seed: no spread to judge noise)" in recommendation(results([one], seeds=1))


@pytest.mark.parametrize(("kwargs", "expected", "absent"), [
    ({"seeds": 2}, "too few seeds (2)", "small validation"),
    ({"n_val": 136}, "small validation split (136 samples < 500)", "too few seeds"),
    ({"runs": [{"strategy": "ohem", "seed": 1, "collapsed": True}]}, "collapsed runs", "too few seeds"),
])
def test_warnings(kwargs, expected, absent):
    found = " ".join(warnings(results([row("ohem", 0.01, compute=0.5)], **kwargs)))
    assert expected in found and absent not in found
    if "runs" in kwargs:
        assert "ohem seed 1" in found
    assert warnings(results([row("ohem", 0.01, compute=0.5)])) == []


def test_a_rate_at_the_edge_of_the_grid_is_warned():
    data = results([row("ohem", 0.01, compute=0.5)])
    data["tuning"]["chosen"] = {"uniform": {"lr": 0.1, "factor": 2.0}, "ohem": {"lr": 0.05, "factor": 1.0}}
    edge = "a wider --lr-grid may do better"
    assert warnings(data) == [f"learning rate chosen at the edge of the rates tried (grid and 0 extension steps) for "
                              f"uniform: {edge}"]  # a results.json from before the grid extended: judged by the grid
    data["tuning"].update(at_edge=["ohem"], extend=2)  # the runner's own record wins
    assert warnings(data) == [f"learning rate chosen at the edge of the rates tried (grid and 2 extension steps) for "
                              f"ohem: {edge}"]
    data["tuning"]["at_edge"] = []
    assert warnings(data) == []
