"""The packages import one way: avbench and evaluation over the families, the families over avcodecs and
visual, everything over engine. No module imports itself back through others (a cycle), and the lower
layers never reach up to a family, the judges or the benchmark, neither by an import nor by a module path
written as a string (a Hydra target, an importlib call)."""

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("engine", "avcodecs", "visual", "hicodit", "talker_t2av", "evaluation", "avbench", "configs")
LOWER = ("engine", "avcodecs", "visual")
UPPER = ("hicodit", "talker_t2av", "evaluation", "avbench")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports, anywhere in its body (function-local imports too;
    imports only for type checkers do not count)."""
    known = modules()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and _type_checking_only(node, parents):
                continue
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
        graph[name] = {m for m in map(resolve, targets) if m and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_one():  # the test above could not fail without it
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("lower", LOWER)
def test_lower_layers_import_no_family_judge_or_benchmark(lower):
    upward = {f"{a} -> {b}" for a, targets in import_graph().items() if a.split(".")[0] == lower
              for b in targets if b.split(".")[0] in UPPER}
    assert not upward


@pytest.mark.parametrize("lower", LOWER)
def test_lower_layers_name_no_family_module_in_a_string(lower):
    """A module path in a string (not a docstring) is an import by another name."""
    pattern = re.compile(rf"^({'|'.join(UPPER)})(\.\w+)+(:\w+)?$")
    named = []
    for path in (REPO / lower).rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        named += [f"{path.relative_to(REPO)}:{node.lineno}: {node.value}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                  and pattern.match(node.value)]
    assert not named
