"""The project's modules import each other without a cycle and without another module's
underscore names: read from the source (every import, a function's lazy ones included), so a
cycle that only a rarely taken path would close is found too.

A package's own __init__ is not counted as a dependency of its submodules (Python runs it
first, whoever imports them): a package may import its submodules, and they each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "compare", "jax_impl", "torch_impl")


def modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted name -> file, for every module of the packages under root."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def dependencies(name: str, path: Path, known: dict[str, Path]) -> tuple[set[str], list[str]]:
    """The project modules `name` imports, and its uses of other modules' underscore names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    private = lambda n: n.startswith("_") and not n.startswith("__")  # noqa: E731
    edges, leaks, aliases = set(), [], {}

    def project(dotted: str) -> str | None:  # the longest project module that `dotted` names
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if target := project(alias.name):
                    edges.add(target)
                    aliases[alias.asname or alias.name.partition(".")[0]] = target if alias.asname else None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1], *filter(None, [base])])
            if not project(base):
                continue
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    edges.add(f"{base}.{alias.name}")
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
                else:
                    edges.add(project(base))
                    if private(alias.name):
                        leaks.append(f"{name} imports {base}.{alias.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and private(node.attr)
                and aliases.get(node.value.id)):
            leaks.append(f"{name} uses {aliases[node.value.id]}.{node.attr}")
    edges.discard(name)
    return {e for e in edges if not name.startswith(e + ".")}, leaks


def check(root: Path, packages: tuple[str, ...]) -> tuple[list[list[str]], list[str]]:
    """(import cycles, each as its path of modules; uses of other modules' underscore names)."""
    known = modules(root, packages)
    graph, leaks = {}, []
    for name, path in known.items():
        graph[name], found = dependencies(name, path, known)
        leaks += found
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles, leaks


def test_no_import_cycles_and_no_private_names_across_modules():
    cycles, leaks = check(ROOT, PACKAGES)
    assert cycles == [] and leaks == []


def test_the_check_finds_a_cycle_and_a_private_name(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import _helper\n")
    (pkg / "b.py").write_text("def f():\n    from pkg import a\n    return a\n_helper = 1\n")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub import c\n")  # a package importing its own
    (pkg / "sub" / "c.py").write_text("from . import d\nfrom pkg import b\nb._helper\n")
    (pkg / "sub" / "d.py").write_text("")
    cycles, leaks = check(tmp_path, ("pkg",))
    assert cycles == [["pkg.a", "pkg.b", "pkg.a"]]
    assert leaks == ["pkg.a imports pkg.b._helper", "pkg.sub.c uses pkg.b._helper"]
