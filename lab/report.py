"""The terminal summary of a run: one line per suite, then the outcome and where results are."""
from __future__ import annotations

from pathlib import Path

from .outcome import Outcome
from .results import SuiteResult

HEADER = f"{'suite':<8} {'passed':>6} {'failed':>6} {'skipped':>7} {'errors':>6} {'time':>8}"


def suite_line(result: SuiteResult) -> str:
    line = (f"{result.name:<8} {result.count('passed'):>6} {result.count('failed'):>6} "
            f"{result.count('skipped'):>7} {result.count('error'):>6} {result.wall_seconds:>7.1f}s")
    return f"{line}  ({result.error})" if result.error else line


def closing(outcome: Outcome, reason: str, directory: Path, seconds: float) -> str:
    """The last two lines of `lab run`, after the suite lines printed as each suite ended."""
    return f"outcome: {outcome.value} ({reason})\nresults: {directory}  [{seconds:.1f} s]"
