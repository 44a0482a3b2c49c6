"""Curricula: the pacing function, and the pressure knob from easy-first through random to hard-first."""

import numpy as np
import pytest

from hardmine import AntiCurriculumPolicy, CurriculumPolicy, PacingPolicy, ScoreMemory


def subset(policy, memory, epoch=0, seed=0):
    policy.start_epoch(epoch, memory)
    return policy.epoch_subset(memory, np.random.default_rng(seed))[0]


@pytest.fixture
def memory():
    m = ScoreMemory(1000)
    m.update(np.arange(1000), np.arange(1000, dtype=float))  # difficulty = index
    return m


def test_curriculum_takes_the_easiest_and_anti_curriculum_the_hardest(memory):
    assert subset(CurriculumPolicy(start=0.1), memory).tolist() == list(range(100))
    assert subset(AntiCurriculumPolicy(start=0.1), memory).tolist() == list(range(900, 1000))


def test_pacing_function_grows_the_part_exponentially_by_steps(memory):
    policy = CurriculumPolicy(start=0.1, growth=2.0, step_length=2)
    sizes = [subset(policy, memory, epoch).size for epoch in range(8)]
    assert sizes == [100, 100, 200, 200, 400, 400, 800, 800]
    assert subset(policy, memory, 8).size == 1000


def test_pressure_blends_from_easy_first_to_hard_first(memory):
    means = [subset(PacingPolicy(pressure=p, start=0.2), memory).mean() for p in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    assert means == sorted(means)
    assert means[0] < 100 and means[-1] > 899 and abs(means[2] - 499.5) < 60
