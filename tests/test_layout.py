"""The layout shows the flow: no import cycle inside hardmine, and guards never import policies.

The graph is built with `ast` from every import statement in src/hardmine (module level, `TYPE_CHECKING`
blocks and function bodies alike); `from a.b import c` counts as importing a.b.c when that is a module.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "hardmine"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                full = [f"{base}.{alias.name}" for alias in node.names]
                targets = [name if name in modules else base for name in full]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_real_imports():
    graph = import_graph()
    assert "hardmine.sampling.guards.base" in graph["hardmine.sampling.policies.base"]
    assert "hardmine.sampling.memory" in graph["hardmine.sampling.sampler"]


def test_no_import_cycle_in_src():
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_guards_import_nothing_from_policies_or_the_sampler():
    graph = import_graph()
    for module, imported in graph.items():
        if module.startswith("hardmine.sampling.guards"):
            forbidden = ("hardmine.sampling.policies", "hardmine.sampling.sampler")
            assert not {m for m in imported if m.startswith(forbidden)}, module


def test_a_component_in_a_new_file_of_its_package_registers_without_an_edit():
    """Policies, guards, in-batch losses and miners are found by importing every module of their package."""
    import sys

    import hardmine
    import hardmine.metric  # noqa: F401 - loaded on first use

    for package in ("sampling/policies", "sampling/guards", "inbatch", "metric"):
        for path in (PACKAGE / package).glob("*.py"):
            if path.name != "__init__.py":
                assert module_name(path) in sys.modules, path


def test_the_moved_modules_still_import_with_a_deprecation_warning():
    import importlib
    import sys
    import warnings

    import hardmine

    for old, name in (("hardmine.memory", "ScoreMemory"), ("hardmine.reference", "reference_losses")):
        sys.modules.pop(old, None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
        assert any(issubclass(w.category, DeprecationWarning) and "hardmine.sampling." in str(w.message)
                   for w in caught), old
        assert getattr(module, name) is getattr(hardmine, name)


def test_no_attribute_is_set_on_a_tensor_and_the_memory_calls_nothing_back():
    source = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    assert "_hardmine_valid" not in source and "_hardmine_mean" not in source
    memory = (PACKAGE / "sampling" / "memory.py").read_text()
    assert "def buffering" not in memory and "flush" not in memory
