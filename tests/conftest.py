"""Shared test helpers, given to tests as fixtures (they live in the public conformance suite)."""

import importlib.util

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


# The detection tests need torchvision, which needs the torch it was built for, not this venv's CPU build. They are
# not skipped: `make test` runs them in .venv-vision (see the Makefile). Only a venv without torchvision (the main
# .venv) leaves them out here, because the Makefile runs them in the other one.
collect_ignore_glob = [] if importlib.util.find_spec("torchvision") else [
    "integrations/test_torchvision*.py", "integrations/torchvision_models.py"]
