"""Shared test helpers, given to tests as fixtures."""

import numpy as np
import pytest

from hardmine import HardExampleSampler


def fake_loss(idx: np.ndarray, step: int) -> np.ndarray:
    """A deterministic stand-in for a model's per-sample loss that changes as training goes on."""
    return np.abs(np.sin(idx * 0.37 + step * 0.11)) * (1 + idx % 7)


def run_steps(sampler: HardExampleSampler, steps: int, start_step: int = 0) -> list[np.ndarray]:
    """Iterate the sampler like a training loop (re-entering iter() at epoch ends) for `steps` batches,
    recording fake losses and asking for the weights of every batch."""
    out, step = [], start_step
    while len(out) < steps:
        for batch in sampler:
            out.append(batch.copy())
            sampler.update(batch, fake_loss(batch, step))
            sampler.weights(batch)
            step += 1
            if len(out) == steps:
                break
    return out


@pytest.fixture(name="run_steps")
def run_steps_fixture():
    """The `run_steps(sampler, steps, start_step=0)` helper."""
    return run_steps


@pytest.fixture(name="fake_loss")
def fake_loss_fixture():
    """The `fake_loss(idx, step)` helper."""
    return fake_loss
