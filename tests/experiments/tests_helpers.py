"""A user's model factory for the tests of `--model tests_helpers:factory` and `hm.compare` (digits: [1, 8, 8])."""

from torch import nn


def factory(seed):
    """A small MLP for digits; `seed` is accepted as hm.compare passes it (torch is seeded before the call)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def not_a_module(seed):
    """A broken factory: returns something that is not an nn.Module."""
    return "model"
