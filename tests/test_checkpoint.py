"""save_state / load_state: atomic writes and loads that refuse pickled objects."""

import os
import pickle

import pytest
import torch

from hardmine import load_state, save_state


class NotAllowed:
    pass


def test_round_trip_of_nested_state(tmp_path):
    state = {"a": torch.arange(3), "nested": {"x": 1.5, "name": "importance", "none": None}, "list": [1, 2]}
    save_state(state, tmp_path / "s.pt")
    loaded = load_state(tmp_path / "s.pt")
    assert torch.equal(loaded["a"], state["a"]) and loaded["nested"] == state["nested"] and loaded["list"] == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["s.pt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "s.pt"
    save_state({"v": 1}, path)
    with pytest.raises((pickle.PicklingError, AttributeError)):  # which one depends on where the lambda lives
        save_state({"v": lambda: None}, path)
    assert load_state(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["s.pt"]


def test_loading_refuses_arbitrary_pickled_objects(tmp_path):
    torch.save({"obj": NotAllowed()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="weights_only|Unsupported global"):
        load_state(tmp_path / "evil.pt")
