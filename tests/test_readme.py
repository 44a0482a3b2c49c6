"""The README's usage example runs as written and trains."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def usage_example() -> str:
    text = README.read_text()
    section = text[text.index("## Usage"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_usage_example_runs_and_samples_by_difficulty():
    namespace: dict = {}
    exec(compile(usage_example(), "README.md", "exec"), namespace)
    memory, sampler = namespace["memory"], namespace["sampler"]
    assert memory.get("seen").sum() > 0 and sampler.epoch == 2
    assert memory.updates == 3 * len(sampler)


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
