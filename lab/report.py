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


def summary(suites: list[SuiteResult], outcome: Outcome, reason: str, directory: Path) -> str:
    lines = [HEADER, *(suite_line(s) for s in suites)] if suites else ["no suite ran"]
    lines.append(f"outcome: {outcome.value} ({reason})")
    lines.append(f"results: {directory}")
    return "\n".join(lines)
