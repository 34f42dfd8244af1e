"""The terminal summary of a run: one line per suite, then the outcome and where results are."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..core.outcome import Outcome
from ..results.model import SuiteResult

HEADER = f"{'suite':<8} {'passed':>6} {'failed':>6} {'skipped':>7} {'errors':>6} {'time':>8}"


def suite_line(result: SuiteResult) -> str:
    line = (f"{result.name:<8} {result.count('passed'):>6} {result.count('failed'):>6} "
            f"{result.count('skipped'):>7} {result.count('error'):>6} {result.wall_seconds:>7.1f}s")
    return f"{line}  ({result.error})" if result.error else line


def closing(outcome: Outcome, reason: str, directory: Path, seconds: float | None) -> str:
    """The last two lines of `lab run`, after the suite lines printed as each suite ended.

    seconds is None when `lab report` reads a run that did not record when it finished."""
    took = f"  [{seconds:.1f} s]" if seconds is not None else ""
    return f"outcome: {outcome.value} ({reason})\nresults: {directory}{took}"


def warning_line(warning: str) -> str:
    return f"warning: {warning}"


def coverage_line(coverage: dict[str, object]) -> str:
    """A coverage run's figures (metadata.json's `coverage`), or why it has none."""
    if "summary" in coverage:
        return f"coverage: {coverage['summary']} (report: {coverage.get('report', '?')})"
    return f"coverage: none ({coverage.get('error', 'not recorded')})"


class SuiteTable:
    """`lab run`'s live output: the header before the first suite, a line as each suite ends,
    and the closing lines (with the kernel's excerpt when the run did not pass)."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.printed = False

    def add(self, result: SuiteResult) -> None:
        if not self.printed:
            print(HEADER, flush=True)
            self.printed = True
        print(suite_line(result), flush=True)

    def close(self, outcome: Outcome, reason: str, directory: Path, seconds: float, excerpt: object,
              excerpt_name: str = "console excerpt", warnings: list[str] | None = None,
              coverage: object = None) -> None:
        if outcome is not Outcome.PASSED and excerpt:
            self.log(f"{excerpt_name}:\n{excerpt}")
        if not self.printed:
            print("no suite ran")
        for warning in warnings or []:
            print(warning_line(warning))
        if isinstance(coverage, dict):
            print(coverage_line(coverage))
        print(closing(outcome, reason, directory, seconds))
