"""lab.report: the terminal summary."""
from __future__ import annotations

from pathlib import Path

from lab.report import table as report
from lab.core.outcome import Outcome
from lab.results.model import ERROR, FAILED, PASSED, SKIPPED, SuiteResult
from lab.results.model import TestRecord as Record


def suite(name: str, outcomes: list[str], wall: float = 1.25, error: str = "") -> SuiteResult:
    records = [Record(name, f"test_{name}.py::t{i}", o, 0.1) for i, o in enumerate(outcomes)]
    return SuiteResult(name, records, wall, 0 if not error else None, error)


def _column_ends(header: str) -> list[int]:
    ends, inside = [], False
    for index, char in enumerate(header + " "):
        if char != " " and not inside:
            inside = True
        elif char == " " and inside:
            inside = False
            ends.append(index)
    return ends


def test_suite_line_counts_line_up_with_the_header() -> None:
    result = suite("maps", [PASSED] * 12 + [FAILED] * 3 + [SKIPPED] * 2 + [ERROR], wall=73.46)
    line = report.suite_line(result)
    fields = line.split()
    assert fields == ["maps", "12", "3", "2", "1", "73.5s"]
    # Right-aligned numbers end where their header words end.
    ends = _column_ends(report.HEADER)
    assert [h for h in report.HEADER.split()] == ["suite", "passed", "failed", "skipped", "errors", "time"]
    for value, end in zip(fields[1:5], ends[1:5]):
        assert line[end - len(value) : end] == value
    assert line.index("73.5s") + len("73.5s") == ends[5]  # the time, unit included, ends under "time"


def test_suite_line_shows_the_error() -> None:
    line = report.suite_line(suite("pin", [], wall=600.0, error="timed out: 'pytest' did not finish within 600 s"))
    assert line.endswith("  (timed out: 'pytest' did not finish within 600 s)")
    assert line.split()[:5] == ["pin", "0", "0", "0", "0"]
    assert "\n" not in line


def test_closing_lines(tmp_path: Path) -> None:
    text = report.closing(Outcome.BOOT_FAILED, "QEMU exited before init was ready", tmp_path / "run-1", 12.34)
    assert text.splitlines() == ["outcome: boot-failed (QEMU exited before init was ready)",
                                 f"results: {tmp_path / 'run-1'}  [12.3 s]"]
