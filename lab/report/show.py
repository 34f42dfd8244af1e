"""`lab report RUN...`: a results directory (read by results/load.py) printed the way `lab run`
printed it, with report/table.py's suite lines."""
from __future__ import annotations

import datetime as dt

from ..core.outcome import Outcome
from ..kernel import ident as kernelident
from ..results.load import LoadedRun
from ..results.model import ERROR, FAILED, TestRecord
from . import table as report


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


def render(view: LoadedRun) -> str:
    kernel = view.metadata.get("kernel")
    lines = [f"kernel: {kernelident.describe(kernel) if isinstance(kernel, dict) else 'not recorded'}"]
    if view.suites:
        lines.append(report.HEADER)
        lines += [report.suite_line(suite) for suite in view.suites]
    else:
        lines.append("no suite ran")
    lines += [_problem(r) for suite in view.suites for r in suite.records if r.outcome in (FAILED, ERROR)]
    warnings = view.metadata.get("warnings")
    lines += [report.warning_line(str(w)) for w in warnings] if isinstance(warnings, list) else []
    coverage = view.metadata.get("coverage")
    lines += [report.coverage_line(coverage)] if isinstance(coverage, dict) else []
    reason = str(view.metadata.get("reason") or "")
    if view.outcome in {o.value for o in Outcome}:
        lines.append(report.closing(Outcome(view.outcome), reason, view.directory, _seconds(view.metadata)))
    else:
        what = f"{view.outcome} (unknown outcome)" if view.outcome else "none (the run did not finish: killed, or still running)"
        lines += [f"outcome: {what}", f"results: {view.directory}"]
    return "\n".join(lines)
