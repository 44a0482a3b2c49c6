"""The run store keeps every (strategy, seed) apart, whatever characters the label holds."""

import numpy as np

from hardmine.experiments.results import RunStore


def test_runs_with_dotted_labels_and_several_seeds_stay_apart(tmp_path):
    store = RunStore(tmp_path / "out", {"dataset": "x"})
    store.check()
    store.open()
    labels = ["rank+class_balance:power=0.5", "rank+class_balance:power=0.25", "a/b c", "uniform"]
    for label in labels:
        for seed in (0, 1, 2):
            store.save(label, seed, {"strategy": label, "seed": seed}, {"v": np.array([seed])})
    store.save("uniform", None, {"reference": True}, {"v": np.array([9])})
    assert len(list((tmp_path / "out" / "runs").glob("*.json"))) == 13
    for label in labels:
        for seed in (0, 1, 2):
            record, arrays = store.load(label, seed)
            assert record == {"strategy": label, "seed": seed} and arrays["v"].tolist() == [seed]
    assert store.load("uniform", None)[0] == {"reference": True}
    assert store.load("uniform", 3) is None
