"""A policy written in one file outside the package (examples/custom_policy.py) registers by subclassing, is
usable by name in build_policy and `hardmine --plugin ... compare --strategies`, and passes check_policy."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hardmine as hm
from hardmine.registry import load_plugin
from hardmine.testing import check_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_policy.py"


@pytest.fixture(scope="module")
def boltzmann():
    module = load_plugin(str(EXAMPLE))
    assert load_plugin(str(EXAMPLE)) is module  # loaded once
    return module.BoltzmannPolicy


def test_the_example_is_short():
    code = [line for line in EXAMPLE.read_text().splitlines() if line.strip()]
    assert len(code) <= 45


def test_it_is_buildable_by_name_and_prefers_hard_samples(boltzmann):
    policy = hm.build_policy("boltzmann", temperature=0.5, mix=0.0)
    assert isinstance(policy, boltzmann) and hm.POLICIES["boltzmann"] is boltzmann
    memory = hm.ScoreMemory(100)
    memory.update(np.arange(100), np.r_[np.zeros(90), np.full(10, 2.0)])
    sampler = hm.HardExampleSampler(memory, 50, num_batches=20, policy=policy, seed=0)
    drawn = np.concatenate(list(sampler))
    assert (drawn >= 90).mean() > 0.8  # exp(4) = 55 times as likely, 10 of 100 samples: 0.86 expected
    with pytest.raises(ValueError, match="temperature"):
        hm.build_policy("boltzmann", temperature=0.0)


def test_it_passes_the_conformance_suite(boltzmann):
    check_policy(boltzmann, params={"temperature": 0.5})
    check_policy(boltzmann, guards=[hm.NoiseGuard(min_visits=1), hm.WeightCap(3.0)])


def test_hardmine_compare_runs_it_by_name(tmp_path):
    src = Path(hm.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "cmp"
    command = [sys.executable, "-c", "from hardmine.cli import app; app()", "--plugin", str(EXAMPLE), "compare",
               "--dataset", "digits", "--strategies", "uniform,boltzmann:temperature=0.5", "--epochs", "1",
               "--seeds", "1", "--out", str(out), "--no-progress"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out / "summary.csv") as f:
        rows = {row["strategy"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"uniform", "boltzmann:temperature=0.5"}
    assert 0.2 < float(rows["boltzmann:temperature=0.5"]["test_acc_mean"]) <= 1.0
    unknown = subprocess.run(command[:3] + ["--plugin", "no/such/file.py", "compare", "--help"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "is not a file" in unknown.stdout + unknown.stderr


def test_the_examples_use_only_public_modules():
    """A user's extension needs no private module: the argument checks are public in `hardmine.checks`."""
    import ast

    for path in sorted(EXAMPLE.parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            private = [n for n in names if n.startswith("hardmine") and any(p.startswith("_") for p in n.split("."))]
            assert not private, f"{path.name} imports the private {private}"


def test_the_public_checks_are_the_library_s_own():
    import hardmine._checks as private
    import hardmine.checks as public

    for name in public.__all__:
        assert getattr(public, name) is getattr(private, name), name
    with pytest.raises(ValueError, match="temperature"):
        public.check_number("temperature", 0.0, 0.0, 1.0, low_inclusive=False)
