"""The ledger: a consumed batch (or a part of it) counts with those before it; unconsumed draws round-trip; one
lookup finds a yielded batch by the object `update` took, by its bytes, or as a part."""

import numpy as np
import pytest
import torch

from hardmine.sampling.chunking import Chunk, share
from hardmine.sampling.ledger import DRAWN_SAVED, RECENT, Ledger


def _drawn(ledger: Ledger, positions) -> Chunk:
    batches = [np.arange(4, dtype=np.int64) + 10 * p for p in positions]
    chunk = share(Chunk(positions[0], batches, [np.full(4, 0.5) for _ in batches]), 0, 1, torch.device("cpu"))
    ledger.record(chunk)
    for mine, key in zip(chunk.shares, chunk.keys):
        ledger.remember(mine, key)
    return chunk


def test_consuming_a_batch_counts_it_and_the_ones_before():
    ledger = Ledger()
    _drawn(ledger, list(range(5)))
    batch = np.array([20, 21, 22, 23])
    ledger.consume(batch, batch)
    assert ledger.consumed == 3 and ledger.stored_from(2) is None and ledger.stored_from(3) is not None
    part = np.array([31])
    ledger.consume(part, part)  # a part of batch 3
    assert ledger.consumed == 4
    again = np.array([20, 21, 22, 23])
    ledger.consume(again, again)  # already consumed: nothing changes
    assert ledger.consumed == 4


def test_the_same_object_consumes_once_per_step():
    ledger = Ledger()
    _drawn(ledger, [0, 1])
    batch = np.array([0, 1, 2, 3])
    ledger.consume(batch, batch)
    ledger.consume(batch, np.array([10, 11, 12, 13]))  # the same object again (weights after update): no effect
    assert ledger.consumed == 1


def test_find_by_the_object_update_took_by_bytes_or_as_a_part():
    ledger = Ledger()
    chunk = _drawn(ledger, [0, 1])
    tensor = torch.tensor([10, 11, 12, 13])
    assert ledger.find(tensor) is chunk.shares[1]  # by the bytes of a CPU int64 tensor
    on_the_side = object()
    ledger.took(on_the_side, chunk.shares[0])
    assert ledger.find(on_the_side) is chunk.shares[0]
    ledger.yielding()  # a new batch is yielded: the object no longer names a batch
    assert ledger.find(on_the_side) is None
    part = ledger.part(np.array([12, 10]))
    assert part.indices.tolist() == [12, 10] and part.weights.tolist() == [0.5, 0.5] and part.valid
    with pytest.raises(ValueError, match=f"last {RECENT} batches"):
        ledger.part(np.array([99]))


def test_state_round_trips_and_is_validated():
    ledger = Ledger()
    _drawn(ledger, list(range(4)))
    first = np.arange(4, dtype=np.int64)
    ledger.consume(first, first)
    state = ledger.state_dict()
    assert state["consumed"] == 1 and state["positions"].tolist() == [1, 2, 3] and DRAWN_SAVED == 256
    assert "state_version" not in state and "config" not in state  # a part of the sampler's (versioned) state
    loaded = Ledger()
    loaded.load_state_dict(state)
    assert loaded.consumed == 1 and np.array_equal(loaded.stored_from(2)[0][0], np.arange(20, 24))
    for bad, match in (({**state, "positions": torch.tensor([1, 3, 2])}, "positions"),
                       ({**state, "consumed": 2}, "consumed count 2"),
                       ({**state, "consumed": -1}, "consumed"),
                       ({**state, "indices": [-state["indices"][0], *state["indices"][1:]]}, "int64 indices"),
                       ({**state, "weights": state["weights"][:2]}, "3 positions, 3 index and 2 weight")):
        fresh = Ledger()
        with pytest.raises(ValueError, match=match):
            fresh.load_state_dict(bad)
        assert fresh.consumed == 0 and fresh.stored_from(1) is None  # refused: nothing assigned
