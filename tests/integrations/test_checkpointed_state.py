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


def test_a_checkpoint_is_read_back_and_one_without_the_file_is_named(tmp_path):
    hm.save_state({"steps": torch.tensor([3])}, tmp_path / "hardmine_stream.pt")
    assert load_from_checkpoint(str(tmp_path), "hardmine_stream.pt", "HardStreamTrainer")["steps"].tolist() == [3]
    with pytest.raises(FileNotFoundError, match=r"has no hardmine.pt: it was not written by HardMiningTrainer"):
        load_from_checkpoint(str(tmp_path), "hardmine.pt", "HardMiningTrainer")
