"""Diff coverage (`lab validate --coverage`): of the lines a patch series adds or changes in the
profiled directories, which are code and which of those the suites ran.

The changed lines are found by comparing each profiled file of the patched build (kept with its
coverage notes) with the base source, not by reading the patches: a series of several patches
touching one file, or a port, changes the lines the final file has, and those are the ones gcov
counts. Pure apart from reading the two trees.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..kernel.profiling import DIRECTORIES


@dataclass(frozen=True)
class ChangedLine:
    number: int  # in the patched file
    text: str
    count: int | None  # times it ran; None: no code on it (a comment, a declaration, a brace)


@dataclass
class ChangedFile:
    file: str  # relative to the tree, e.g. kernel/bpf/syscall.c
    added: bool  # the series created it
    lines: list[ChangedLine] = field(default_factory=list)

    @property
    def code(self) -> list[ChangedLine]:
        return [line for line in self.lines if line.count is not None]

    @property
    def run(self) -> list[ChangedLine]:
        return [line for line in self.code if line.count]

    @property
    def not_run(self) -> list[ChangedLine]:
        return [line for line in self.code if not line.count]


@dataclass
class DiffCoverage:
    files: list[ChangedFile]

    @property
    def code(self) -> int:
        return sum(len(f.code) for f in self.files)

    @property
    def run(self) -> int:
        return sum(len(f.run) for f in self.files)

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.run / self.code, 1) if self.code else None

    def headline(self) -> str:
        if not self.files:
            return f"the series changes no line in {', '.join(DIRECTORIES)}"
        changed = sum(len(f.lines) for f in self.files)
        return (f"{self.run} of {self.code} changed lines of code run ({self.percent}%) "
                f"in {', '.join(DIRECTORIES)}; {changed} lines changed in {len(self.files)} file(s)")

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "run": self.run, "percent": self.percent, "files": [{
            "file": f.file, "added": f.added, "code": len(f.code), "run": len(f.run),
            "lines": [{"line": line.number, "count": line.count, "text": line.text} for line in f.lines],
        } for f in self.files]}


def changed_numbers(before: list[str], after: list[str]) -> list[int]:
    """The 1-based numbers of `after`'s lines that are not `before`'s (inserted or replaced)."""
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    return [number + 1 for tag, _, _, start, end in matcher.get_opcodes() if tag in ("replace", "insert")
            for number in range(start, end)]


def _profiled_files(tree: Path) -> list[str]:
    return sorted(str(path.relative_to(tree)) for directory in DIRECTORIES
                  for path in (tree / directory).rglob("*") if path.suffix in (".c", ".h") and path.is_file())


def measure(base_tree: Path, patched_tree: Path, counts: dict[str, dict[int, int]]) -> DiffCoverage:
    """The series' changed lines in the profiled files of `patched_tree` (the patched build's kept
    sources) against `base_tree` (the source without the series), with the run's line counts."""
    found = []
    for name in _profiled_files(patched_tree):
        after = (patched_tree / name).read_text(errors="replace").splitlines()
        original = base_tree / name
        before = original.read_text(errors="replace").splitlines() if original.is_file() else []
        numbers = changed_numbers(before, after)
        if not numbers:
            continue
        ran = counts.get(name, {})
        found.append(ChangedFile(name, not original.is_file(),
                                 [ChangedLine(n, after[n - 1], ran.get(n)) for n in numbers]))
    return DiffCoverage(found)
