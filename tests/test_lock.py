"""requirements/test.lock agrees with pyproject.toml: every range the tests install is pinned inside it, and the
lock was made from the current dependency tables (else: run `make lock`)."""

import importlib.util
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "test.lock"
PYPROJECT = ROOT / "pyproject.toml"


def _stamp_module():
    spec = importlib.util.spec_from_file_location("stamp", ROOT / "requirements" / "stamp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def locked() -> dict[str, Version]:
    """name -> pinned version of every package in the lock."""
    pins = re.findall(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)", LOCK.read_text(), re.M)
    return {canonicalize_name(name): Version(version) for name, version in pins}


def tested_requirements() -> list[Requirement]:
    """The project's dependencies and its `test` extra, with the hardmine[...] extras it names expanded."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project["optional-dependencies"]
    found, todo, seen = [Requirement(r) for r in project["dependencies"]], ["test"], set()
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for text in extras[extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == "hardmine":
                todo.extend(e for e in requirement.extras if e not in seen)
            else:
                found.append(requirement)
    return found


def test_every_tested_requirement_is_pinned_inside_its_range():
    pins = locked()
    makefile_torch = Version(re.search(r"^TORCH := torch==(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1))
    problems = []
    for requirement in tested_requirements():
        name = canonicalize_name(requirement.name)
        version = makefile_torch if name == "torch" else pins.get(name)
        if version is None:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement} but the lock pins {version}")
    assert not problems, "; ".join(problems) + ": run `make lock`"


def test_lock_was_made_from_the_current_pyproject():
    stamp = _stamp_module()
    first = LOCK.read_text().splitlines()[0]
    assert first == stamp.HEADER + stamp.dependencies_digest(PYPROJECT), (
        "pyproject.toml's dependencies changed since requirements/test.lock was made: run `make lock`")


def test_every_pin_carries_a_hash():
    blocks = re.split(r"\n(?=[A-Za-z0-9._-]+==)", LOCK.read_text())
    pinned = [b for b in blocks if re.match(r"[A-Za-z0-9._-]+==", b)]
    assert len(pinned) == len(locked()) > 20
    assert all("--hash=sha256:" in block for block in pinned)
    assert "torch==" not in LOCK.read_text() and "nvidia" not in LOCK.read_text()


def test_the_digest_changes_with_a_range(tmp_path):
    stamp = _stamp_module()
    changed = tmp_path / "pyproject.toml"
    changed.write_text(PYPROJECT.read_text().replace('"numpy>=1.24"', '"numpy>=1.25"'))
    assert stamp.dependencies_digest(changed) != stamp.dependencies_digest(PYPROJECT)
