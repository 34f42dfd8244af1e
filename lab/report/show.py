"""`lab report RUN...`: a results directory read back and printed the way `lab run` printed it.

Reading and checking the files is compare.py's (same messages, same run-id lookup); this module
turns results.json's suites back into SuiteResults so report.py's table prints them unchanged.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from . import compare
from ..kernel import ident as kernelident
from . import table as report
from ..core.errors import UserError
from ..core.outcome import Outcome
from ..results.model import ERROR, FAILED, SuiteResult, TestRecord


@dataclass(frozen=True)
class RunView:
    directory: Path
    metadata: dict[str, object]
    suites: list[SuiteResult]

    @property
    def outcome(self) -> str | None:
        value = self.metadata.get("outcome")
        return str(value) if value is not None else None

    @property
    def passed(self) -> bool:
        return self.outcome == Outcome.PASSED.value


def _record(raw: dict[str, object]) -> TestRecord:
    properties = raw.get("properties") or {}
    assert isinstance(properties, dict)  # compare.load_run has checked it
    try:
        duration = float(raw.get("duration") or 0.0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        duration = 0.0
    return TestRecord(str(raw["suite"]), str(raw["name"]), str(raw["outcome"]), duration,
                      str(raw.get("message") or ""), str(raw.get("skip_reason") or ""),
                      {str(k): str(v) for k, v in properties.items()})


def _suite(summary: object, records: list[TestRecord], directory: Path) -> SuiteResult:
    if not isinstance(summary, dict) or not isinstance(summary.get("suite"), str):
        raise UserError(f"run {directory}: results.json: a suite without a name")
    try:
        wall = float(summary.get("wall_seconds") or 0.0)
    except (TypeError, ValueError):
        raise UserError(f"run {directory}: results.json: suite {summary['suite']}: wall_seconds is not a number") from None
    rc = summary.get("pytest_rc")
    return SuiteResult(summary["suite"], records, wall, rc if isinstance(rc, int) else None, str(summary.get("error") or ""))


def load(arg: str, results_root: Path | None = None) -> RunView:
    """A run directory (or a run id under results_root); UserError if it is not a readable run."""
    run = compare.load_run(arg, results_root)  # checks results.json's tests and metadata.json
    data = json.loads((run.directory / "results.json").read_text())
    summaries = data.get("suites")
    if not isinstance(summaries, list):
        raise UserError(f"run {run.directory}: results.json has no list of suites")
    records = [_record(raw) for raw in data["tests"]]
    suites = [_suite(s, [r for r in records if r.suite == s.get("suite")], run.directory) for s in summaries]
    # A test of a suite with no summary would otherwise be silently left out of the table.
    named = {s.name for s in suites}
    for stray in sorted({r.suite for r in records} - named):
        suites.append(SuiteResult(stray, [r for r in records if r.suite == stray], 0.0))
    return RunView(run.directory, run.metadata, suites)


def _seconds(metadata: dict[str, object]) -> float | None:
    try:
        started = dt.datetime.fromisoformat(str(metadata["started"]))
        finished = dt.datetime.fromisoformat(str(metadata["finished"]))
    except (KeyError, ValueError):
        return None
    return (finished - started).total_seconds()


def _problem(record: TestRecord) -> str:
    label = "FAILED" if record.outcome == FAILED else "ERROR"
    first, *rest = (record.message or "(no message)").splitlines() or ["(no message)"]
    return "\n".join([f"{label} {record.suite} {record.name}: {first}", *(f"    {line}" for line in rest)])


def render(view: RunView) -> str:
    kernel = view.metadata.get("kernel")
    lines = [f"kernel: {kernelident.describe(kernel) if isinstance(kernel, dict) else 'not recorded'}"]
    if view.suites:
        lines.append(report.HEADER)
        lines += [report.suite_line(suite) for suite in view.suites]
    else:
        lines.append("no suite ran")
    lines += [_problem(r) for suite in view.suites for r in suite.records if r.outcome in (FAILED, ERROR)]
    reason = str(view.metadata.get("reason") or "")
    if view.outcome in {o.value for o in Outcome}:
        lines.append(report.closing(Outcome(view.outcome), reason, view.directory, _seconds(view.metadata)))
    else:
        what = f"{view.outcome} (unknown outcome)" if view.outcome else "none (the run did not finish: killed, or still running)"
        lines += [f"outcome: {what}", f"results: {view.directory}"]
    return "\n".join(lines)
