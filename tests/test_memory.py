"""ScoreMemory: what it records, how it refuses bad scores, and how its state round-trips."""

import numpy as np
import pytest
import torch

from hardmine import Column, ScoreMemory, load_state, save_state


def test_update_records_score_ema_seen_and_step():
    memory = ScoreMemory(5, ema_decay=0.5)
    memory.update(np.array([0, 2]), np.array([4.0, 2.0]))
    memory.update(torch.tensor([2, 4]), torch.tensor([6.0, 1.0]), step=10)
    assert memory.get("score").tolist()[1:] == pytest.approx([np.nan, 6.0, np.nan, 1.0], nan_ok=True)
    assert memory.get("ema", np.array([0, 2, 4])).tolist() == [4.0, 4.0, 1.0]
    assert memory.get("seen").tolist() == [1, 0, 2, 0, 1]
    assert memory.get("last_step").tolist() == [0, -1, 10, -1, 10]
    assert memory.updates == 2


def test_duplicated_index_takes_the_last_score():
    memory = ScoreMemory(3)
    memory.update(np.array([1, 1, 1]), np.array([5.0, 6.0, 7.0]))
    assert memory.get("score", np.array([1]))[0] == 7.0
    assert memory.get("seen", np.array([1]))[0] == 1


def test_nan_scores_raise_naming_the_indices_and_leave_memory_unchanged():
    memory = ScoreMemory(10)
    memory.update(np.arange(10), np.arange(10, dtype=float))
    before = memory.state_dict()
    with pytest.raises(ValueError, match=r"2 non-finite value\(s\).*\[7, 3\]"):
        memory.update(np.array([1, 7, 3]), np.array([0.5, np.nan, np.inf]))
    after = memory.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]) if isinstance(value, torch.Tensor) else value == after[key]


@pytest.mark.parametrize(
    "indices, scores, error, match",
    [
        (np.array([0, 5]), np.array([1.0, 1.0]), ValueError, "out of range"),
        (np.array([0.0, 1.0]), np.array([1.0, 1.0]), TypeError, "indices must hold integers"),
        (np.array([0, 1]), np.array([1.0]), ValueError, "length"),
        (np.array([], dtype=np.int64), np.array([]), ValueError, "empty"),
        (np.array([0]), np.array(["x"]), TypeError, "scores"),
    ],
)
def test_bad_updates(indices, scores, error, match):
    memory = ScoreMemory(5)
    with pytest.raises(error, match=match):
        memory.update(indices, scores)
    assert memory.updates == 0 and memory.get("seen").sum() == 0


def test_labels_are_kept_and_checked():
    memory = ScoreMemory(4, labels=[0, 2, 2, 1])
    assert memory.get("label").tolist() == [0, 2, 2, 1] and memory.num_classes == 3
    with pytest.raises(ValueError, match="labels must have shape"):
        ScoreMemory(4, labels=[0, 1])
    with pytest.raises(TypeError, match="labels must hold integers"):
        ScoreMemory(2, labels=[0.5, 1.0])
    with pytest.raises(ValueError, match="'label' is not available"):
        ScoreMemory(2).get("label")
    with pytest.raises(ValueError, match="name must be one of"):
        memory.get("loss")


def test_constructor_validates_its_arguments():
    with pytest.raises(ValueError, match="num_samples"):
        ScoreMemory(0)
    with pytest.raises(ValueError, match="ema_decay"):
        ScoreMemory(3, ema_decay=1.0)


def test_state_round_trips_through_a_file_loaded_without_pickle(tmp_path):
    memory = ScoreMemory(6, labels=np.arange(6) % 2, ema_decay=0.8)
    memory.update(np.array([1, 4, 5]), np.array([0.3, 2.0, 1.0]))
    memory.update(np.array([4]), np.array([1.0]))
    save_state(memory.state_dict(), tmp_path / "memory.pt")
    restored = ScoreMemory(6)
    with pytest.raises(ValueError, match=r"ema_decay: saved 0.8, constructed with 0.9; labels: saved array"):
        restored.load_state_dict(load_state(tmp_path / "memory.pt"))
    restored.load_state_dict(load_state(tmp_path / "memory.pt"), use_saved_config=True)
    for name in memory.statistics:
        assert np.array_equal(memory.get(name), restored.get(name), equal_nan=True)
    assert restored.updates == 2 and restored.ema_decay == 0.8
    restored.update(np.array([4]), np.array([3.0]))
    memory.update(np.array([4]), np.array([3.0]))
    assert np.array_equal(memory.get("ema"), restored.get("ema"), equal_nan=True)


def test_load_state_dict_checks_everything_before_changing_anything():
    memory = ScoreMemory(4)
    memory.update(np.array([0]), np.array([1.0]))
    state = memory.state_dict()
    state["seen"] = torch.zeros(3, dtype=torch.int32)
    with pytest.raises(ValueError, match="state\\['seen'\\]"):
        memory.load_state_dict(state)
    with pytest.raises(ValueError, match="num_samples"):
        ScoreMemory(5).load_state_dict(memory.state_dict())
    assert memory.get("seen").tolist() == [1, 0, 0, 0]


def test_cartography_forgetting_and_aum_over_visits():
    memory = ScoreMemory(3)
    assert not memory.tracks("aum") and memory.tracks("score")
    visits = [  # (true_prob, correct, margin) of samples 0, 1, 2 at three visits
        ([0.9, 0.2, 0.6], [1, 0, 1], [2.0, -1.0, 0.5]),
        ([0.1, 0.3, 0.6], [0, 0, 1], [-2.0, -0.5, 0.5]),
        ([0.8, 0.1, 0.6], [1, 0, 0], [1.0, -1.5, -0.1]),
    ]
    for prob, correct, margin in visits:
        memory.update(np.arange(3), np.ones(3), true_prob=np.array(prob), correct=np.array(correct, dtype=bool),
                      margin=np.array(margin))
    probs = np.array([v[0] for v in visits])
    np.testing.assert_allclose(memory.get("confidence"), probs.mean(0), rtol=1e-6)
    np.testing.assert_allclose(memory.get("variability"), probs.std(0), atol=1e-6)
    assert memory.get("forgetting").tolist() == [1, 0, 1]
    np.testing.assert_allclose(memory.get("aum"), np.array([v[2] for v in visits]).mean(0), rtol=1e-6)
    assert memory.tracks("aum") and memory.tracks("confidence")
    restored = ScoreMemory(3)
    restored.load_state_dict(memory.state_dict())
    np.testing.assert_array_equal(restored.get("aum"), memory.get("aum"))
    with pytest.raises(ValueError, match="true_prob has 1 non-finite"):
        memory.update(np.arange(3), np.ones(3), true_prob=np.array([0.5, np.nan, 0.5]))
    assert memory.get("prob_count").tolist() == [3, 3, 3]


def test_a_declared_column_is_set_once_from_an_array_and_checkpointed():
    memory = ScoreMemory(4)
    column = Column("irreducible_loss", np.float32, np.nan, source=None)
    memory.declare(column)
    memory.declare(column)  # the same declaration again: nothing happens
    assert np.isnan(memory.get("irreducible_loss")).all()
    memory.set("irreducible_loss", np.array([0.5, 0.1, 0.2, 0.3]))
    memory.update(np.array([0, 1]), np.array([1.0, 1.0]))  # scores do not touch it
    np.testing.assert_allclose(memory.get("irreducible_loss", np.array([0, 3])), [0.5, 0.3])
    with pytest.raises(ValueError, match="already declared differently"):
        memory.declare(Column("irreducible_loss", np.float64))
    with pytest.raises(ValueError, match="declared column without a source.*got 'score'"):
        memory.set("score", np.zeros(4))
    with pytest.raises(ValueError, match="irreducible_loss has 1 non-finite"):
        memory.set("irreducible_loss", np.array([0.5, np.nan, 0.2, 0.3]))
    restored = ScoreMemory(4)
    with pytest.raises(ValueError, match="does not declare"):
        restored.load_state_dict(memory.state_dict())
    restored.declare(column)
    restored.load_state_dict(memory.state_dict())
    np.testing.assert_array_equal(restored.get("irreducible_loss"), memory.get("irreducible_loss"))


def test_a_declared_column_with_a_source_and_a_rule_updates_from_update():
    def running_max(memory, column, idx, values, step):
        column[idx] = np.fmax(column[idx], values)

    memory = ScoreMemory(3)
    memory.declare(Column("max_loss", np.float32, np.nan, source="loss_seen", rule=running_max, checkpointed=False))
    assert not memory.tracks("max_loss")  # allocated on the first update that passes its source
    memory.update(np.arange(3), np.ones(3), loss_seen=np.array([1.0, 3.0, 2.0]))
    memory.update(np.arange(3), np.ones(3), loss_seen=np.array([2.0, 1.0, 2.5]))
    assert memory.get("max_loss").tolist() == [2.0, 3.0, 2.5] and "max_loss" not in memory.state_dict()
    with pytest.raises(TypeError, match="statistic 'loss_sen'"):
        memory.update(np.arange(3), np.ones(3), loss_sen=np.ones(3))


def test_writing_several_batches_at_once_is_updating_them_one_by_one():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n, count = 30, int(rng.integers(2, 6))
        sizes = rng.integers(1, 12, count)
        batches = [rng.integers(0, n, s) for s in sizes]  # duplicates inside and across batches
        scores = [rng.random(s) for s in sizes]
        probs = [rng.random(s) for s in sizes]
        one_by_one, at_once = ScoreMemory(n), ScoreMemory(n)
        for idx, score, prob in zip(batches, scores, probs):
            one_by_one.update(idx, score, true_prob=prob)
        distinct = at_once.write(np.concatenate(batches), {"scores": np.concatenate(scores),
                                                           "true_prob": np.concatenate(probs)},
                                 batch=np.repeat(np.arange(count), sizes), num_batches=count)
        assert np.array_equal(distinct, np.unique(np.concatenate(batches)))
        for name in ("score", "ema", "seen", "last_step", "prob_mean", "prob_m2", "prob_count"):
            assert np.array_equal(one_by_one.get(name), at_once.get(name), equal_nan=True), name
        assert one_by_one.updates == at_once.updates == count
