"""The integrations' checkpoint bundle: memory, sampler and extra objects restore together or not at all."""

import numpy as np
import pytest
import torch

import hardmine as hm
from hardmine.integrations._state import check_extra, load_from_checkpoint, restore, state_of
from hardmine.metric import CrossBatchMemory


def _parts(n=20):
    memory = hm.ScoreMemory(n)
    sampler = hm.HardExampleSampler(memory, 4, policy="importance", seed=0)
    bank = CrossBatchMemory(size=6, embedding_dim=2)
    return memory, sampler, {"bank": bank}


def test_a_refused_part_leaves_every_part_as_it_was():
    memory, sampler, extra = _parts()
    for step, batch in zip(range(3), sampler):
        sampler.update(batch, np.arange(batch.size, dtype=float))
        extra["bank"].enqueue(torch.randn(batch.size, 2), torch.zeros(batch.size, dtype=torch.long), step)
    saved = state_of(memory, sampler, extra)
    memory2, sampler2, extra2 = _parts()
    before = (memory2.state_dict(), extra2["bank"].state_dict())
    bad = {**saved, "sampler": {**saved["sampler"], "position": 99}}
    with pytest.raises(ValueError):
        restore(memory2, sampler2, extra2, bad)
    assert memory2.updates == before[0]["updates"] == 0
    assert torch.equal(extra2["bank"].state_dict()["steps"], before[1]["steps"])
    restore(memory2, sampler2, extra2, saved)
    assert memory2.updates == 3 and torch.equal(extra2["bank"].embeddings, extra["bank"].embeddings)
    with pytest.raises(ValueError, match="extra states"):
        restore(memory2, sampler2, {}, saved)
    with pytest.raises(TypeError, match="extra_state must be a mapping"):
        check_extra([1])


class _UserCounter:
    """A user's extra object outside hardmine.state.Stateful: it refuses a negative count."""

    def __init__(self):
        self.count = 0

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        if state["count"] < 0:
            raise ValueError(f"count must be >= 0, got {state['count']}")
        self.count = state["count"]


def test_every_part_is_checked_before_any_is_assigned():
    memory, sampler, extra = _parts()
    extra["user"] = _UserCounter()
    for batch in zip(range(3), sampler):
        sampler.update(batch[1], np.arange(batch[1].size, dtype=float))
    extra["user"].count = 5
    saved = state_of(memory, sampler, extra)
    memory2, sampler2, extra2 = _parts()
    extra2["user"] = _UserCounter()
    before = (memory2.state_dict(), sampler2.state_dict())
    for bad in ({**saved, "memory": {**saved["memory"], "updates": -1}},  # refused by the memory: checked first
                {**saved, "extra": {**saved["extra"], "user": {"count": -1}}}):  # by the user's object: loaded last
        with pytest.raises(ValueError):
            restore(memory2, sampler2, extra2, bad)
        assert memory2.updates == 0 and extra2["user"].count == 0
        assert sampler2.state_dict()["position"] == before[1]["position"] == 0
    restore(memory2, sampler2, extra2, saved)
    assert memory2.updates == 3 and extra2["user"].count == 5 and sampler2.state_dict()["position"] == 3


def test_a_checkpoint_is_read_back_and_one_without_the_file_is_named(tmp_path):
    hm.save_state({"steps": torch.tensor([3])}, tmp_path / "hardmine_stream.pt")
    assert load_from_checkpoint(str(tmp_path), "hardmine_stream.pt", "HardStreamTrainer")["steps"].tolist() == [3]
    with pytest.raises(FileNotFoundError, match=r"has no hardmine.pt: it was not written by HardMiningTrainer"):
        load_from_checkpoint(str(tmp_path), "hardmine.pt", "HardMiningTrainer")
