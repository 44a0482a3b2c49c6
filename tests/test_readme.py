"""The README's code runs as written: every block fenced ```python run (the usage loop, the integrations) is
executed in a fresh namespace; blocks fenced ```python are fragments of a loop and are not."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def runnable_blocks() -> list[str]:
    """The code of every ```python run block, in order."""
    return re.findall(r"^```python run\n(.*?)^```", README.read_text(), re.S | re.M)


def usage_example() -> str:
    text = README.read_text()
    section = text[text.index("## Usage"):]
    return re.search(r"```python(?: run)?\n(.*?)```", section, re.S).group(1)


def test_usage_example_runs_and_samples_by_difficulty():
    namespace: dict = {}
    exec(compile(usage_example(), "README.md", "exec"), namespace)
    memory, sampler = namespace["memory"], namespace["sampler"]
    assert memory.get("seen").sum() > 0 and sampler.epoch == 2
    assert memory.updates == 3 * len(sampler)


def test_the_integrations_have_runnable_blocks():
    blocks = runnable_blocks()
    assert any("HardMiningCallback" in b for b in blocks) and any("HardMiningTrainer" in b for b in blocks)


@pytest.mark.parametrize("number", range(len(runnable_blocks())))
def test_runnable_block_runs(number, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = runnable_blocks()[number]
    exec(compile(code, f"README.md block {number}", "exec"), {"__name__": "readme"})


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
