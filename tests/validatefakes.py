"""Fakes for the `lab validate` tests: a tiny source tree, patches made against it, and run
directories written as `lab run` writes them (real RunRecords), so validate reads what it would."""
from __future__ import annotations

import difflib
from pathlib import Path

from lab.core.outcome import Outcome, Verdict
from lab.kernel import source as ksource
from lab.results.model import FAILED, PASSED, SKIPPED, SuiteResult
from lab.results.model import TestRecord as Record
from lab.results.record import RunRecord

LINES = [f"line {n:02d}\n" for n in range(1, 41)]


def udiff(name: str, old: list[str], new: list[str]) -> str:
    return "".join(difflib.unified_diff(old, new, f"a/{name}", f"b/{name}"))


def replaced(lines: list[str], changes: dict[int, str]) -> list[str]:
    return [changes.get(number, line) for number, line in enumerate(lines, 1)]


def tree(root: Path, version: str = "6.1.192", text: list[str] = LINES) -> ksource.SourceTree:
    """A source tree with kernel/f.c and a version, as ksource.acquire would hand it back (with
    the files that make it pass for an x86 kernel tree)."""
    (root / "kernel").mkdir(parents=True, exist_ok=True)
    (root / "kernel" / "f.c").write_text("".join(text))
    (root / "arch" / "x86").mkdir(parents=True, exist_ok=True)
    major, minor, *rest = version.split(".")
    (root / "Makefile").write_text(f"VERSION = {major}\nPATCHLEVEL = {minor}\nSUBLEVEL = {rest[0] if rest else ''}\n")
    (root / "Kconfig").write_text("")
    (root / "arch" / "x86" / "Kconfig").write_text("")
    return ksource.SourceTree(root, version, {"origin": "tree", "spec": str(root), "digest": "x"})


def run_dir(root: Path, kernel: str, outcome: Outcome, tests: dict[str, str]) -> Path:
    """A finished run under root (a child's results root) with these dump/<name> outcomes."""
    record = RunRecord.create(root, kernel, {"kernel": kernel, "suites": ["dump"], "accel": "auto"})
    record.update(kernel={"release": "6.1.192", "spec": kernel, "build_id": kernel.removeprefix("build:")})
    records = [Record("dump", name, result, 0.1, "AssertionError: boom" if result == FAILED else "",
                      "no BPF_MAP_DUMP" if result == SKIPPED else "") for name, result in tests.items()]
    record.add_suite(SuiteResult("dump", records, 12.0, 0))
    (record.directory / "console.log").write_text("Linux version ...\n")
    record.finish(Verdict(outcome, "every suite passed" if outcome == Outcome.PASSED else str(outcome.value)))
    return record.directory


BASE_TESTS = {"test_dump_rfc.py::test_a": SKIPPED, "test_dump_rfc.py::test_b": SKIPPED, "test_walk.py::test_c": PASSED}
GOOD_TESTS = {"test_dump_rfc.py::test_a": PASSED, "test_dump_rfc.py::test_b": PASSED, "test_walk.py::test_c": PASSED}
BAD_TESTS = {"test_dump_rfc.py::test_a": PASSED, "test_dump_rfc.py::test_b": PASSED, "test_walk.py::test_c": FAILED}
