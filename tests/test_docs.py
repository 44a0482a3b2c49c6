"""Every ```python block of README.md and docs/*.md runs as written, each in a fresh namespace and a temporary
working directory: no fragments. Other fences (```bash, ```text) are not executed."""

import os
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)


def blocks(page: Path) -> list[tuple[str, int, str]]:
    """(language, line of the opening fence, code) of every fenced block of a page."""
    text = page.read_text()
    return [(m.group(1), text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text)]


def python_blocks() -> list[tuple[str, str]]:
    return [(f"{page.relative_to(ROOT)}:{line}", code) for page in PAGES for lang, line, code in blocks(page)
            if lang == "python"]


def needs_torchvision(code: str) -> bool:
    """A block that uses torchvision: tests/integrations/test_torchvision_docs.py runs it in .venv-vision."""
    return re.search(r"^\s*(from|import) (torchvision|hardmine\.integrations\.torchvision)\b", code, re.M) is not None


BLOCKS = [(where, code) for where, code in python_blocks() if not needs_torchvision(code)]


def run(where: str, code: str) -> dict:
    """Run a block; a hardmine DeprecationWarning (a name the page should import from its new path) fails it."""
    namespace: dict = {"__name__": "__docs__"}
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="hardmine", category=DeprecationWarning)
        exec(compile(code, where, "exec"), namespace)
    return namespace


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    return tmp_path


@pytest.mark.parametrize("where,code", BLOCKS, ids=[w for w, _ in BLOCKS])
def test_block_runs(where, code, in_tmp):
    run(where, code)


def test_every_fence_is_named():
    """An unnamed fence could hide Python from the test: every block says its language."""
    unnamed = [f"{page.relative_to(ROOT)}:{line}" for page in PAGES for lang, line, _ in blocks(page) if not lang]
    assert not unnamed


def test_usage_example_samples_by_difficulty(in_tmp):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Usage"):]
    code = re.search(r"^```python\n(.*?)^```", section, re.S | re.M).group(1)
    namespace = run("README.md usage", code)
    memory, sampler = namespace["memory"], namespace["sampler"]
    assert memory.get("seen").sum() > 0 and sampler.epoch == 2
    assert memory.updates == 3 * len(sampler)


def test_readme_has_the_integrations_and_the_two_commands():
    text = (ROOT / "README.md").read_text()
    code = [c for lang, _, c in blocks(ROOT / "README.md") if lang == "python"]
    for name in ("HardMiningCallback", "HardMiningTrainer", "mine_from_dataset", "pytorch_metric_learning"):
        assert any(name in c for c in code), name
    assert "make demo" in text and "make test" in text
    assert len(text.splitlines()) <= 300


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}


def test_docs_links_resolve():
    """Relative links between the pages point at files, and at headings, that exist."""
    missing = []
    for page in PAGES:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", page.read_text()):
            if "://" in target:
                continue
            linked = (page.parent / target) if target else page
            if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
                missing.append(f"{page.relative_to(ROOT)} -> {target}#{anchor}")
    assert not missing
