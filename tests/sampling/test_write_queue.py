"""The memory's own write queue: queued batches read as written, are written in order by the memory itself, and a
writer learns what was written by asking; nothing calls back into the writer."""

import numpy as np
import pytest

from hardmine.sampling.host_copy import HostValues
from hardmine.sampling.memory import ScoreMemory


def _queue_two(memory: ScoreMemory) -> None:
    memory.enqueue(np.array([0, 1, 2]), {"scores": np.array([1.0, 2.0, 3.0])}, tag="me")
    memory.enqueue(np.array([2, 3]), {"scores": np.array([5.0, 6.0])}, tag="me")


def test_a_queued_update_reads_as_written_and_updates_counts_without_writing():
    queued, direct = ScoreMemory(6), ScoreMemory(6)
    _queue_two(queued)
    direct.update([0, 1, 2], [1.0, 2.0, 3.0])
    direct.update([2, 3], [5.0, 6.0])
    assert queued.updates == 2 and queued.queued == 2  # counted, not written
    np.testing.assert_array_equal(queued.get("score"), direct.get("score"))  # a read drains first
    assert queued.queued == 0
    for name in ("seen", "last_step", "ema"):
        np.testing.assert_array_equal(queued.get(name), direct.get(name))


def test_the_writer_asks_what_was_written_one_array_per_write():
    memory = ScoreMemory(6)
    _queue_two(memory)
    memory.enqueue(np.array([5]), {"scores": np.array([1.0])}, tag="other")
    memory.drain()
    written = memory.take_written("me")
    assert [w.tolist() for w in written] == [[0, 1, 2, 3]]
    assert memory.take_written("me") == [] and [w.tolist() for w in memory.take_written("other")] == [[5]]


def test_late_values_that_fail_their_check_drop_their_batch_and_write_nothing():
    memory = ScoreMemory(6)
    calls = []

    def refuse(indices, host):
        calls.append(indices.tolist())
        raise ValueError("per_sample_loss refused")

    memory.enqueue(np.array([0]), {"scores": np.array([1.0])})
    memory.enqueue(np.array([1]), {"scores": HostValues("per_sample_loss", np.array([2.0]), np.array([1]))},
                   validate=refuse)
    with pytest.raises(ValueError, match="refused"):
        memory.drain()
    assert calls == [[1]] and memory.queued == 1 and memory.get("seen").sum() == 1  # the good one, on its own
