"""`hm.compare` runs every registered guard (on a policy that takes it) and the practitioner's alternatives to
class imbalance (class_balanced, class_weighted, logit_adjusted, an in-batch loss on class-balanced batches) on a
small long-tailed digits set, one seed, one epoch."""

import json

import numpy as np
import pytest
import torch

import hardmine as hm
from hardmine.datasets.digits import load_digits
from hardmine.sampling.guards import GUARDS
from hardmine.sampling.policies import POLICIES

SUBSET = 600  # training samples: a second or so per run


def mlp(seed):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    train = torch.utils.data.TensorDataset(torch.from_numpy(data.x_train[:SUBSET]),
                                           torch.from_numpy(data.y_train[:SUBSET]))
    test = torch.utils.data.TensorDataset(torch.from_numpy(data.x_test), torch.from_numpy(data.y_test))
    return train, test


def run(digits, out, strategies, **options):
    train, test = digits
    return hm.compare(mlp, train, test, strategies=strategies, seeds=1, epochs=1, out=out, test_curve=False,
                      evals_per_epoch=1, **options)


def policy_for(guard):
    """The first of a few policies that takes `guard`."""
    return next(p for p in ("importance", "prune_easy", "uniform") if POLICIES[p].affected_by(GUARDS[guard]))


@pytest.mark.parametrize("guard", sorted(GUARDS))
def test_compare_runs_with_every_registered_guard(digits, tmp_path, guard):
    spec = f"{policy_for(guard)}+{guard}"
    results = run(digits, tmp_path / guard, spec)
    runs = {r["strategy"]: r for r in results["runs"]}
    assert set(runs) == {"uniform", spec}
    record = runs[spec]
    assert record["diverged"] is None and record["backwards"] > 0 and 0.0 <= record["test_acc"] <= 1.0
    assert (record["num_suspects"] is None) == (guard != "noise_guard")
    written = json.loads((tmp_path / guard / "results.json").read_text())
    assert [r["strategy"] for r in written["runs"]] == ["uniform", spec]


def test_compare_runs_the_alternatives_on_long_tailed_data(digits, tmp_path):
    strategies = ["class_balanced", "class_weighted", "logit_adjusted:tau=1", "ohem+class_balance",
                  "importance:alpha=1,mix=0+class_balance"]
    results = run(digits, tmp_path / "lt", strategies, imbalance=0.1)
    runs = {r["strategy"]: r for r in results["runs"]}
    assert set(runs) == {"uniform", "class_balanced", "class_weighted", "logit_adjusted:tau=1", "ohem+class_balance",
                         "importance:alpha=1,mix=0+class_balance"}
    counts = np.asarray(results["dataset"]["class_counts_train"])
    assert counts.max() / counts.min() >= 5  # really long-tailed
    n = int(counts.sum())
    for label, record in runs.items():
        assert record["diverged"] is None and 0.0 <= record["test_acc"] <= 1.0, label
    rare = int(np.argmin(counts))
    assert runs["uniform"]["sampler_stats"][f"class_share/{rare}"] < 0.05  # the data's own share, about 0.02
    for label, tolerance in [("class_balanced", 0.01), ("ohem+class_balance", 0.01),
                             ("importance:alpha=1,mix=0+class_balance", 0.08)]:
        shares = [runs[label]["sampler_stats"][f"class_share/{c}"] for c in range(counts.size)]
        assert max(abs(share - 1 / counts.size) for share in shares) < tolerance, (label, shares)
    # the sampler strategies and the losses pass over N samples an epoch, like uniform; OHEM back-propagates half
    for label in ("class_balanced", "class_weighted", "logit_adjusted:tau=1"):
        assert runs[label]["forwards"] == runs[label]["backwards"] == n, label
    assert runs["ohem+class_balance"]["backwards"] < 0.6 * runs["ohem+class_balance"]["forwards"]


def test_compare_refuses_what_cannot_be_built_before_writing(digits, tmp_path):
    for strategies, message in [("logit_adjusted:tau=-1", "tau must be a finite number >= 0, got -1"),
                                ("class_weighted+class_balance", "each class would be corrected twice"),
                                ("logit_adjusted:class_counts=3", "unknown parameter 'class_counts'")]:
        with pytest.raises(ValueError, match=message):
            run(digits, tmp_path / "refused", strategies)
        assert not (tmp_path / "refused").exists()


def test_the_default_strategies_add_the_alternatives_only_on_imbalanced_classes(digits, tmp_path):
    from hardmine.experiments.api import DEFAULT_STRATEGIES, IMBALANCE_STRATEGIES

    balanced = run(digits, tmp_path / "balanced", None, tune=False)
    assert balanced["strategies"] == DEFAULT_STRATEGIES.split(",")
    skewed = run(digits, tmp_path / "skewed", None, tune=False, imbalance=0.1)
    assert skewed["strategies"] == DEFAULT_STRATEGIES.split(",") + IMBALANCE_STRATEGIES.split(",")
    assert any("class-imbalance alternatives" in note for note in skewed["notes"])
    chosen = run(digits, tmp_path / "chosen", "ohem", tune=False, imbalance=0.1)
    assert chosen["strategies"] == ["uniform", "ohem"]
