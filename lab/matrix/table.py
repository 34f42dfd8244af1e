"""The test x kernel matrix of a `lab matrix` run, read back from its run directories, and its
terminal table (rows where the kernels differ first; identical rows only counted unless asked).

Runs are read with results/load.py, so a matrix shows exactly what `lab compare` would.
A kernel whose run never made a results directory (a fetch error) is a column of "—".
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from ..results.load import Key, load_run
from ..results.model import ERROR, FAILED, PASSED, SKIPPED, TestRecord

# Cell texts, and the class name the HTML report colours them by.
CELL_TEXT = {PASSED: "pass", FAILED: "FAIL", SKIPPED: "skip", ERROR: "ERR"}
MISSING = "—"
CELL_CLASS = {"pass": "pass", "FAIL": "fail", "skip": "skip", "ERR": "err", MISSING: "missing"}


@dataclass(frozen=True)
class SuiteTime:
    suite: str
    wall_seconds: float


@dataclass(frozen=True)
class Column:
    """One kernel of the matrix: what was asked, and what its run recorded (if it made one)."""
    kernel: str
    directory: Path | None
    outcome: str | None
    reason: str
    release: str
    seconds: float | None  # the child's wall time, start to exit, as the matrix measured it
    suites: tuple[SuiteTime, ...]
    tests: dict[Key, TestRecord]

    def count(self, text: str) -> int:
        return sum(1 for r in self.tests.values() if CELL_TEXT[r.outcome] == text)


@dataclass(frozen=True)
class Row:
    suite: str
    name: str
    cells: tuple[TestRecord | None, ...]

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(CELL_TEXT[c.outcome] if c else MISSING for c in self.cells)

    @property
    def differs(self) -> bool:
        return len(set(self.texts)) > 1


@dataclass(frozen=True)
class Matrix:
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]  # differing rows first, each group in (suite, name) order

    @property
    def differing(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.differs)

    @property
    def identical(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if not r.differs)


def cell_text(result: TestRecord | None) -> str:
    return CELL_TEXT[result.outcome] if result else MISSING


def load_column(kernel: str, directory: Path | None, seconds: float | None = None) -> Column:
    if directory is None:
        return Column(kernel, None, None, "no results directory (see the kernel's lab.log)", "", seconds, (), {})
    try:
        run = load_run(directory)
    except UserError as exc:
        return Column(kernel, directory, None, str(exc), "", seconds, (), {})
    return Column(kernel, run.directory, run.outcome, run.reason, str(run.kernel.get("release") or ""),
                  seconds, tuple(SuiteTime(s.name, s.wall_seconds) for s in run.suites), run.tests)


def build(columns: list[Column]) -> Matrix:
    keys = sorted({key for column in columns for key in column.tests})
    rows = [Row(suite, name, tuple(c.tests.get((suite, name)) for c in columns)) for suite, name in keys]
    ordered = [r for r in rows if r.differs] + [r for r in rows if not r.differs]
    return Matrix(tuple(columns), tuple(ordered))


def load(matrix_dir: Path) -> Matrix:
    """A matrix directory as `lab matrix` left it (matrix.json naming each kernel's run)."""
    try:
        data = json.loads((matrix_dir / "matrix.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"matrix {matrix_dir}: cannot read matrix.json: {exc}") from None
    columns = []
    for entry in data.get("kernels") or []:
        run = entry.get("run")
        columns.append(load_column(str(entry.get("kernel")), matrix_dir / run if run else None, entry.get("seconds")))
    return build(columns)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(matrix: Matrix, show_all: bool = False) -> str:
    """Rows where kernels differ, then identical rows (only with show_all, else a count), then
    one summary line per kernel."""
    widths = [max(len(c.kernel), 4) for c in matrix.columns]
    shown = matrix.rows if show_all else matrix.differing  # the width of what is printed, not of all rows
    names = [f"{r.suite}/{r.name}" for r in shown]
    name_width = min(max([len(n) for n in names] + [4]), 90)

    def line(name: str, cells: tuple[str, ...]) -> str:
        return "  ".join([f"{_cut(name, name_width):<{name_width}}", *(f"{c:<{w}}" for c, w in zip(cells, widths))]).rstrip()

    lines = [line("test", tuple(c.kernel for c in matrix.columns))]
    differing, identical = matrix.differing, matrix.identical
    if differing:
        lines += [line(f"{r.suite}/{r.name}", r.texts) for r in differing]
    else:
        lines.append("(no test differs between the kernels)")
    if show_all:
        lines += [line(f"{r.suite}/{r.name}", r.texts) for r in identical]
    if identical:
        lines.append(f"{len(identical)} identical row(s) across all kernels" + ("" if show_all else " (--all prints them)"))
    lines.append("")
    lines += [summary_line(c) for c in matrix.columns]
    return "\n".join(lines)


def summary_line(column: Column) -> str:
    counts = " ".join(f"{column.count(t)} {t}" for t in ("pass", "FAIL", "skip", "ERR"))
    took = f"{column.seconds:.1f} s" if column.seconds is not None else "? s"
    outcome = column.outcome or "no outcome"
    return f"{column.kernel}: {outcome} ({column.reason})  {counts}  [{took}]"


def passed(matrix: Matrix) -> bool:
    return bool(matrix.columns) and all(c.outcome == "passed" for c in matrix.columns)
