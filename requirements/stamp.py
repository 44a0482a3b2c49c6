"""The digest that ties requirements/test.lock to pyproject.toml's dependency tables.

`python requirements/stamp.py requirements/test.lock` writes `# pyproject-dependencies-sha256: <hex>` as the lock's
first line (`make lock` runs it); tests/test_lock.py recomputes the digest and fails when pyproject changed since.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path

HEADER = "# pyproject-dependencies-sha256: "


def dependencies_digest(pyproject: Path) -> str:
    """sha256 (hex) of the `dependencies` and `optional-dependencies` tables of `pyproject`, as canonical JSON."""
    project = tomllib.loads(Path(pyproject).read_text())["project"]
    tables = {"dependencies": project.get("dependencies", []),
              "optional-dependencies": project.get("optional-dependencies", {})}
    return hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()


def stamp(lock: Path, pyproject: Path) -> None:
    """Rewrite `lock` with the digest of `pyproject` as its first line (replacing an older stamp)."""
    lines = [line for line in Path(lock).read_text().splitlines() if not line.startswith(HEADER)]
    Path(lock).write_text("\n".join([HEADER + dependencies_digest(pyproject), *lines]) + "\n")


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    stamp(Path(sys.argv[1]) if len(sys.argv) > 1 else root / "requirements" / "test.lock", root / "pyproject.toml")
