"""The shape of lab/ (README, "How it works"): stage packages whose imports point one way, no
import cycle between modules (TYPE_CHECKING imports count too), and each third-party library
that speaks to the outside world in the one package that owns it. An `ast` walk; nothing runs."""
from __future__ import annotations

import ast
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parent.parent / "lab"

# Which stage packages each may import (besides itself): the pipeline, bottom up.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "kernel": {"core"},
    "results": {"core"},
    "target": {"core"},
    "guest": {"kernel", "core"},
    "vm": {"guest", "target", "results", "core"},  # results: the file names
    "report": {"results", "kernel", "core"},
    "coverage": {"results", "kernel", "core"},
    "run": {"vm", "guest", "target", "results", "kernel", "coverage", "core"},
    "matrix": {"report", "results", "vm", "guest", "core"},  # report: `lab compare`'s property rule
    "lava": {"run", "report", "results", "vm", "guest", "kernel", "core"},
    "validate": {"matrix", "report", "results", "kernel", "coverage", "core"},
    "bisect": {"matrix", "results", "kernel", "core"},
    "bench": {"run", "vm", "guest", "kernel", "core"},
    "cli": {"bisect", "validate", "matrix", "lava", "run", "report", "results", "vm", "guest", "target", "kernel",
            "coverage", "core"},
}
# A library that talks to the world, and the only packages that may import it.
OWNERS: dict[str, set[str]] = {"paramiko": {"target"}, "pexpect": {"vm"}, "argparse": {"cli", "bench"}}


def modules(root: Path = LAB) -> dict[str, Path]:
    """Dotted name -> file, for every module under root (a package is its __init__)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file, however nested (TYPE_CHECKING,
    inside a function); `from pkg import mod` names the module when mod is one."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                yield (candidate if candidate in known else source), node.lineno


def graph(root: Path = LAB) -> dict[str, dict[str, int]]:
    """Module -> {lab module it imports: line}, and the external top-level names under "ext:"."""
    found = modules(root)
    edges: dict[str, dict[str, int]] = {}
    for name, path in found.items():
        targets: dict[str, int] = {}
        for imported, line in imports(name, path, set(found)):
            if imported.split(".")[0] == root.name:
                # `from lab.x import y` where lab.x is a package module: the package itself.
                while imported not in found and "." in imported:
                    imported = imported.rpartition(".")[0]
                targets.setdefault(imported, line)
            else:
                targets.setdefault("ext:" + imported.split(".")[0], line)
        edges[name] = targets
    return edges


def stage(module: str) -> str | None:
    """The stage package a module is in; None for lab/__init__ and lab/__main__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def find_cycle(edges: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle between lab modules, as a path that ends where it started, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in edges.get(node, {}):
            if target.startswith("ext:") or target == node:
                continue
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if state.get(target) is None:
                found = visit(target)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(edges):
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def violations(root: Path = LAB) -> list[str]:
    edges = graph(root)
    problems = []
    for module, targets in sorted(edges.items()):
        own = stage(module)
        for target, line in targets.items():
            where = f"{module} (line {line})"
            if target.startswith("ext:"):
                library = target[4:]
                owners = OWNERS.get(library)
                if owners is not None and own not in owners:
                    problems.append(f"{where} imports {library}, which only {', '.join(sorted(owners))} may")
                continue
            theirs = stage(target)
            if own is None or theirs is None:
                if own is not None and target == root.name:
                    problems.append(f"{where} imports the top-level package")
                continue  # lab/__main__ -> cli
            if theirs != own and theirs not in ALLOWED.get(own, set()):
                problems.append(f"{where} imports {target}: {own} may not import {theirs}")
    cycle = find_cycle(edges)
    if cycle:
        problems.append("import cycle: " + " -> ".join(cycle))
    return problems


def test_lab_top_level_has_only_the_package_files() -> None:
    assert sorted(p.name for p in LAB.glob("*.py")) == ["__init__.py", "__main__.py"]
    assert set(ALLOWED) == {p.parent.name for p in LAB.glob("*/__init__.py")}


def test_every_package_lists_its_modules() -> None:
    for init in LAB.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        listed = {word for line in doc.splitlines() for word in line.split()}
        missing = [p.stem for p in init.parent.glob("*.py") if p.stem != "__init__" and p.stem not in listed]
        assert not missing, f"{init.parent.name}/__init__.py does not list {missing}"


def test_imports_point_one_way_without_cycles() -> None:
    assert violations() == []


def copy_lab(tmp_path: Path) -> Path:
    copy = tmp_path / "lab"
    for path in LAB.rglob("*.py"):
        target = copy / path.relative_to(LAB)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    return copy


@pytest.mark.parametrize("module, added, expected", [
    # core importing the run lifecycle would close core -> run -> ... -> core.
    ("core/outcome.py", "from ..run import lifecycle\n", "core may not import run"),
    # A cycle inside one package, hidden behind TYPE_CHECKING.
    ("results/model.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .record import RunRecord\n",
     "import cycle: lab.results."),
    ("report/table.py", "import paramiko\n", "which only target may"),
    ("run/verdict.py", "import argparse\n", "which only bench, cli may"),
])
def test_the_check_fails_on_a_broken_layout(tmp_path: Path, module: str, added: str, expected: str) -> None:
    copy = copy_lab(tmp_path)
    path = copy / module
    path.write_text(path.read_text() + "\n" + added)
    found = violations(copy)
    assert any(expected in problem for problem in found), found


def test_no_source_file_is_hidden_by_gitignore() -> None:
    """A module .gitignore hides (results/ once hid lab/results/) works here and is missing from
    every clean clone."""
    listed = subprocess.run(["git", "-C", str(LAB.parent), "ls-files", "--others", "--ignored", "--exclude-standard",
                             "lab", "guest-tests", "images", "kernel-configs", "tests"],
                            capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    hidden = [name for name in listed.stdout.split() if "__pycache__" not in name and not name.endswith(".pyc")
              and ".pytest_cache" not in name]
    assert hidden == []
