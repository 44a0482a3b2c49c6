"""Shared test helpers, given to tests as fixtures (they live in the public conformance suite)."""

import pytest

from hardmine.testing import fake_loss, run_steps


@pytest.fixture(name="run_steps")
def run_steps_fixture():
    """The `run_steps(sampler, steps, start_step=0)` helper."""
    return run_steps


@pytest.fixture(name="fake_loss")
def fake_loss_fixture():
    """The `fake_loss(idx, step)` helper."""
    return fake_loss
