"""`--test SUITE/FILE::TEST`: the tests a run is limited to, checked against what the suites hold
before anything is fetched or booted.

A name is written as `lab compare` and `lab matrix` print it (`maps/test_map_basics.py::test_x[hash]`).
The suites are collected on the host (`pytest --collect-only`: guest-tests/ is standard library and
pytest, its parameters are fixed lists), so a typo is one line and exit 2, not a boot that ran nothing.
A name without its `[...]` parameters selects every parametrisation, as pytest's node ids do.
"""
from __future__ import annotations

import difflib
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache

from ..core.errors import InfraError, UserError
from .suites import TestTree, default_tree, suite_base

COLLECT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Selection:
    """Suite -> the record names (pytest node ids within the suite's directory) to run; empty: all."""

    tests: dict[str, tuple[str, ...]]

    @property
    def suites(self) -> list[str]:
        return list(self.tests)

    def of(self, suite: str) -> tuple[str, ...]:
        return self.tests.get(suite, ())

    @property
    def names(self) -> list[str]:
        """As the user writes them, for reproducer.sh and the bisect record."""
        return [f"{suite}/{name}" for suite, names in self.tests.items() for name in names]


def split_name(text: str) -> tuple[str, str]:
    suite, slash, name = text.strip().partition("/")
    if not slash or not suite or "::" not in name:
        raise UserError(f"--test {text!r}: expected SUITE/FILE::TEST as `lab compare` prints it, "
                        "e.g. maps/test_maps_hash.py::test_update_noexist[HASH]")
    return suite, name


@lru_cache(maxsize=16)
def _collect(root: str, path: str, base: str) -> frozenset[str]:
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", path],
                          cwd=root, capture_output=True, text=True, timeout=COLLECT_TIMEOUT, check=False)
    # pytest exits 5 when the suite collects nothing (an empty suite of a test tree): no names then.
    if done.returncode not in (0, 5):
        tail = "; ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise InfraError(f"collecting {path} on the host failed (pytest exit {done.returncode}): {tail}")
    prefix = base + "/"
    return frozenset(line[len(prefix):] for line in done.stdout.splitlines() if line.startswith(prefix) and "::" in line)


def collected(tree: TestTree, suite: str) -> frozenset[str]:
    """Every test name of a suite, as its records will be named."""
    return _collect(str(tree.root), tree.suites[suite], suite_base(tree, suite))


def _matches(name: str, names: frozenset[str]) -> list[str]:
    if name in names:
        return [name]
    return sorted(n for n in names if n.startswith(name + "["))


def select(texts: list[str], tree: TestTree | None = None) -> Selection:
    """The selection of `--test` options, in the order given (a suite's tests run together)."""
    tree = tree or default_tree()
    chosen: dict[str, list[str]] = {}
    for text in texts:
        suite, name = split_name(text)
        if suite not in tree.suites:
            raise UserError(f"--test {text}: no suite {suite!r} (choose from {', '.join(tree.suites)})")
        names = collected(tree, suite)
        if not _matches(name, names):
            near = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(f'{suite}/{n}' for n in near)}?" if near else ""
            raise UserError(f"--test {text}: the {suite} suite has no such test{hint}")
        if name not in chosen.setdefault(suite, []):
            chosen[suite].append(name)
    return Selection({suite: tuple(names) for suite, names in chosen.items()})


def one_test(text: str, tree: TestTree | None = None) -> tuple[str, str]:
    """A name that stands for exactly one test record (bisect judges one test's outcome)."""
    tree = tree or default_tree()
    select([text], tree)
    suite, name = split_name(text)
    found = _matches(name, collected(tree, suite))
    if found != [name]:
        shown = ", ".join(f"{suite}/{n}" for n in found[:3])
        raise UserError(f"--test {text}: names {len(found)} tests ({shown}{', ...' if len(found) > 3 else ''}); "
                        "give one, with its [parameters]")
    return suite, name
