"""`lab validate`'s table, one row per version (source, what it resolved to, applies, builds,
base and patched outcome, changes, verdict), the details below it (apply notes, build errors,
each version's `lab compare` text), and validate.json with every row.

Paths in validate.json are relative to the validation directory, so it can be moved whole.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core.files import write_json_atomic
from ..matrix import progress as matrixprogress
from ..report import compare, compare_text
from ..results.load import LoadedRun
from .pipeline import SIDES, VersionState
from .verdict import DOES_NOT_APPLY, KINDS, Verdict, verdict

NONE = "—"
HEADERS = ("#", "source", "resolved", "applies", "builds", "base", "patched", "changes", "verdict")
COVERAGE_HEADER = "changed lines run"  # with --coverage, before the verdict
_CHANGE_WORDS = {"newly_failing": "newly failing", "newly_passing": "newly passing", "newly_skipped": "newly skipped",
                 "behaviour_changed": "behaviour changed", "added": "added", "removed": "removed"}


@dataclass(frozen=True)
class Row:
    state: VersionState
    verdict: Verdict
    coverage: bool = False  # the validation measured diff coverage (--coverage)

    def run(self, side: str) -> LoadedRun | None:
        result = self.state.comparison
        return (result.a if side == "base" else result.b) if result else None


def rows(states: list[VersionState], coverage: bool = False) -> list[Row]:
    return [Row(state, verdict(state), coverage) for state in states]


def headers(table: list[Row]) -> tuple[str, ...]:
    if any(row.coverage for row in table):
        return (*HEADERS[:-1], COVERAGE_HEADER, HEADERS[-1])
    return HEADERS


def coverage_cell(state: VersionState) -> str:
    measured = state.diff_coverage
    if measured is None:
        return "unmeasured" if state.coverage_problem else NONE
    if not measured.code:
        return "no code changed"
    return f"{measured.run} of {measured.code} ({measured.percent}%)"


def coverage_details(state: VersionState) -> list[str]:
    """The diff coverage of a version: the figure, each file's, and every changed line of code
    that did not run, with its source."""
    if state.coverage_problem:
        return [f"diff coverage: none ({state.coverage_problem})"]
    measured = state.diff_coverage
    if measured is None:
        return []
    lines = [f"diff coverage: {measured.headline()}"]
    for changed in measured.files:
        lines.append(f"  {changed.file}{' (added)' if changed.added else ''}: {len(changed.run)} of "
                     f"{len(changed.code)} changed lines of code run")
    not_run = [(changed.file, line) for changed in measured.files for line in changed.not_run]
    if not_run:
        lines.append(f"changed lines of code not run ({len(not_run)}):")
        lines += [f"  {name}:{line.number}: {line.text.strip()}" for name, line in not_run]
    return lines


def applies_cell(state: VersionState) -> str:
    return state.applies.status if state.applies else NONE


def builds_cell(state: VersionState) -> str:
    steps = [state.builds.get(side) for side in ("base", "patched")]
    if steps[0] is None:
        return NONE
    if steps[0].error:
        return "base fails"
    if steps[1] is None:
        return "base only"
    return "patched fails" if steps[1].error else "both"


def outcome_cell(row: Row, side: str) -> str:
    run = row.run(side)
    if run is not None:
        return f"{run.outcome or 'unfinished'} ({len(run.tests)})"
    child = row.state.children.get(side)
    if child is None:
        return NONE
    return f"exit {child.returncode}" if child.returncode is not None else "not finished"


def changes_text(result: compare.Comparison | None) -> str:
    if result is None:
        return NONE
    counts = [f"{len(result.category(name))} {word}" for name, word in _CHANGE_WORDS.items() if result.category(name)]
    if result.flaky:  # with --repeat: not counted as changes (flakiness explains them)
        counts.append(f"{len(result.flaky)} flaky")
    return ", ".join(counts) or "none"


def cells(row: Row) -> tuple[str, ...]:
    state = row.state
    return (str(state.version.index), state.version.source, state.resolved or NONE, applies_cell(state),
            builds_cell(state), outcome_cell(row, "base"), outcome_cell(row, "patched"),
            changes_text(state.comparison), *([coverage_cell(state)] if row.coverage else []), row.verdict.kind)


def render_table(table: list[Row]) -> str:
    titles = headers(table)
    lines = [titles, *(cells(row) for row in table)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(titles))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def details(row: Row) -> list[str]:
    """What the table cannot hold: the apply notes, build errors, the verdict's reason, and the
    version's `lab compare` text."""
    state = row.state
    lines = [f"== {state.version.index}. {state.version.source}" + (f": {state.resolved}" if state.resolved else "")]
    if state.series:
        lines.append(f"series: {', '.join(p.name for p in state.series)}" + (f" (port {state.port})" if state.port else ""))
    if state.applies:
        lines.append(f"applies: {state.applies.describe()}")
    for side in SIDES:
        step = state.builds.get(side)
        if step is not None:
            lines.append(f"{side} build: " + (step.error or f"build:{step.build_id}" + (" (cached)" if step.cached else "")))
    if row.verdict.kind == DOES_NOT_APPLY:
        lines.append(f"verdict: {DOES_NOT_APPLY} (shown, not counted as a regression)")
    else:
        lines.append(f"verdict: {row.verdict.kind}" + (f" ({row.verdict.reason})" if row.verdict.reason != row.verdict.kind else ""))
    lines += coverage_details(state)
    if state.comparison is not None:
        lines += ["", compare_text.render(state.comparison)]
    return lines


def summary_line(table: list[Row]) -> str:
    counts = [f"{n} {kind}" for kind in KINDS if (n := sum(1 for row in table if row.verdict.kind == kind))]
    return f"validate: {len(table)} version(s): {', '.join(counts)}"


def render(table: list[Row]) -> str:
    blocks = [render_table(table)]
    blocks += ["\n".join(details(row)) for row in table]
    blocks.append(summary_line(table))
    return "\n\n".join(blocks)


def _relative(path: Path | str | None, base: Path) -> str | None:
    return Path(os.path.relpath(path, base)).as_posix() if path else None


def comparison_json(result: compare.Comparison, base: Path) -> dict[str, object]:
    data = compare.to_json(result)
    for side in ("a", "b"):
        run = data[side]
        if isinstance(run, dict):
            directory = run.get("directory")
            run["directory"] = _relative(str(directory), base) if directory else None
    return data


def row_json(row: Row, base: Path) -> dict[str, object]:
    state = row.state
    runs: dict[str, object] = {}
    for side, child in state.children.items():
        loaded = row.run(side)
        runs[side] = {"run": _relative(state.run_directory(side), base), "log": _relative(child.log_path, base),
                      "exit_code": child.returncode, "seconds": child.seconds,
                      "outcome": loaded.outcome if loaded else None,
                      "repetitions": [_relative(matrixprogress.run_directory(c.root), base)
                                      for c in state.repeats.get(side, [child])]}
    return {
        "index": state.version.index,
        "source": state.version.source,
        "directory": _relative(state.directory, base),
        "resolved": ({"version": state.tree.version, **state.tree.identity} if state.tree else None),
        "series": [{"name": p.name, "sha256": p.sha256} for p in state.series],
        "port": state.port,
        "applies": state.applies.to_json() if state.applies else None,
        "builds": {side: step.to_json() for side, step in state.builds.items()},
        "runs": runs,
        "comparison": comparison_json(state.comparison, base) if state.comparison else None,
        "verdict": row.verdict.kind,
        "reason": row.verdict.reason,
        **({"diff_coverage": state.diff_coverage.to_json() if state.diff_coverage else None,
            "coverage_problem": state.coverage_problem} if row.coverage else {}),
        "timings": state.timings,
    }


def write_json(path: Path, table: list[Row], request: dict[str, object], exit_status: int | None) -> None:
    data = {**request, "exit_code": exit_status, "versions": [row_json(row, path.parent) for row in table]}
    write_json_atomic(path, data)
