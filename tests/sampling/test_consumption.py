"""Consumption: a consumed batch (or a part of it) counts with those before it; unconsumed draws round-trip."""

import numpy as np
import pytest
import torch

from hardmine.sampling.consumption import Consumption


def _drawn(c: Consumption, positions) -> None:
    for p in positions:
        batch = np.arange(4, dtype=np.int64) + 10 * p
        c.record(p, batch, np.full(4, 0.5), batch)


def test_consuming_a_batch_counts_it_and_the_ones_before():
    c = Consumption()
    _drawn(c, range(5))
    c.consume(np.array([20, 21, 22, 23]))
    assert c.consumed == 3 and c.stored(2) is None and c.stored(3) is not None
    c.consume(np.array([31]))  # a part of batch 3
    assert c.consumed == 4
    c.consume(np.array([20, 21, 22, 23]))  # already consumed: nothing changes
    assert c.consumed == 4


def test_state_round_trips_and_is_validated():
    c = Consumption()
    _drawn(c, range(4))
    c.consume(np.arange(4, dtype=np.int64))
    state = c.state_dict()
    assert state["consumed"] == 1 and state["positions"].tolist() == [1, 2, 3]
    loaded = Consumption()
    loaded.load(Consumption.check_state(state, num_batches=4, num_samples=40))
    assert loaded.consumed == 1 and np.array_equal(loaded.stored(2)[0], np.arange(20, 24))
    bad = {**state, "positions": torch.tensor([1, 2, 9])}
    with pytest.raises(ValueError, match="positions"):
        Consumption.check_state(bad, num_batches=4, num_samples=40)
    with pytest.raises(ValueError, match=r"\[0, 30\)"):
        Consumption.check_state(state, num_batches=4, num_samples=30)
    with pytest.raises(ValueError, match="consumed"):
        Consumption.check_state({**state, "consumed": 7}, num_batches=4, num_samples=40)
