"""The ```python blocks of README.md and docs/*.md that use torchvision run as written, here in .venv-vision (the
main suite's tests/test_docs.py runs every other block)."""

import pytest

from tests import test_docs
from tests.test_docs import needs_torchvision, python_blocks, run

in_tmp = test_docs.in_tmp  # the fixture: a temporary working directory
BLOCKS = [(where, code) for where, code in python_blocks() if needs_torchvision(code)]


def test_the_pages_have_torchvision_blocks():
    assert any(where.startswith("docs/detection.md") for where, _ in BLOCKS)


@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize("where,code", BLOCKS, ids=[w for w, _ in BLOCKS])
def test_block_runs(where, code):
    run(where, code)
