"""The test x kernel matrix of a `lab matrix` run, read back from its run directories, and its
terminal table: rows whose outcome differs between the kernels first (identical rows only
counted unless asked), then the tests whose recorded behaviour differs (matrix/behaviour.py),
key by key, then the counts.

Runs are read with results/load.py and properties compared by `lab compare`'s rule, so a matrix
shows exactly what `lab compare` would. A kernel whose run never made a results directory (a
fetch error) is a column of "—".
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import UserError
from ..report import flaky
from ..report.compare import LONG_VALUE
from ..report.table import coverage_line as run_coverage_line
from ..results.load import Key, load_run
from ..results.model import ERROR, FAILED, PASSED, SKIPPED, TestRecord
from . import behaviour as matrixbehaviour

# Cell texts, and the class name the HTML report colours them by.
CELL_TEXT = {PASSED: "pass", FAILED: "FAIL", SKIPPED: "skip", ERROR: "ERR"}
MISSING = matrixbehaviour.NOT_RUN  # a test the kernel did not run: the same mark in both tables
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
    flaky: dict[Key, str] = field(default_factory=dict)  # --repeat: tests that differ between its runs, their counts
    runs: int = 1
    coverage: dict[str, object] | None = None  # --coverage: its run's figures (metadata.json's `coverage`)

    @property
    def coverage_report(self) -> Path | None:
        """The run's gcovr HTML report, when it has one."""
        report = (self.coverage or {}).get("report")
        if self.directory is None or not isinstance(report, str) or not (self.directory / report).is_file():
            return None
        return self.directory / report

    def count(self, text: str) -> int:
        return sum(1 for r in self.tests.values() if CELL_TEXT[r.outcome] == text)


@dataclass(frozen=True)
class Row:
    suite: str
    name: str
    cells: tuple[TestRecord | None, ...]
    behaviour: tuple[matrixbehaviour.PropertyRow, ...] = ()  # the recorded properties that differ
    flaky: tuple[str, ...] = ()  # per kernel: its counts where the test differed between that kernel's runs, else ""

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(CELL_TEXT[c.outcome] if c else MISSING for c in self.cells)

    @property
    def is_flaky(self) -> bool:
        """Flaky on some kernel: what differs is not counted, since flakiness may explain it."""
        return any(self.flaky)

    @property
    def outcome_differs(self) -> bool:
        return len(set(self.texts)) > 1 and not self.is_flaky

    @property
    def behaviour_differs(self) -> bool:
        return bool(self.behaviour) and not self.is_flaky

    @property
    def differs(self) -> bool:
        """The outcome differs, or the outcome is the same and the kernels behaved differently."""
        return self.outcome_differs or self.behaviour_differs


@dataclass(frozen=True)
class Matrix:
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]  # outcome differs, then behaviour only, then identical; each group in (suite, name) order

    @property
    def differing(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.differs)

    @property
    def outcome_differing(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.outcome_differs)

    @property
    def behaviour_differing(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.behaviour_differs)

    @property
    def flaky(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.is_flaky)

    @property
    def identical(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if not r.differs and not r.is_flaky)


def cell_text(result: TestRecord | None) -> str:
    return CELL_TEXT[result.outcome] if result else MISSING


def load_column(kernel: str, directory: Path | None, seconds: float | None = None,
                repetitions: tuple[Path, ...] = ()) -> Column:
    """A kernel's column: its (first) run, and with --repeat the flakes among all its runs."""
    if directory is None:
        return Column(kernel, None, None, "no results directory (see the kernel's lab.log)", "", seconds, (), {})
    try:
        run = load_run(directory)
        others = [load_run(d) for d in repetitions if d != directory]
    except UserError as exc:
        return Column(kernel, directory, None, str(exc), "", seconds, (), {})
    flakes = {key: flake.counts() for key, flake in flaky.find([run, *others]).items()} if others else {}
    coverage = run.metadata.get("coverage")
    return Column(kernel, run.directory, run.outcome, run.reason, str(run.kernel.get("release") or ""),
                  seconds, tuple(SuiteTime(s.name, s.wall_seconds) for s in run.suites), run.tests,
                  flakes, 1 + len(others), coverage if isinstance(coverage, dict) else None)


def build(columns: list[Column]) -> Matrix:
    keys = sorted({key for column in columns for key in column.tests})
    kernels = tuple(c.kernel for c in columns)
    rows = []
    for suite, name in keys:
        cells = tuple(c.tests.get((suite, name)) for c in columns)
        flakes = tuple(c.flaky.get((suite, name), "") for c in columns)
        rows.append(Row(suite, name, cells, matrixbehaviour.differences(cells, kernels), flakes if any(flakes) else ()))
    ordered = ([r for r in rows if r.outcome_differs] + [r for r in rows if r.differs and not r.outcome_differs]
               + [r for r in rows if r.is_flaky] + [r for r in rows if not r.differs and not r.is_flaky])
    return Matrix(tuple(columns), tuple(ordered))


def differences_json(matrix: Matrix) -> dict[str, object]:
    """What differs, for matrix.json: the counts, the tests whose outcome differs (each kernel's
    outcome, null: not run) and those whose recorded behaviour differs (each key's value on each
    kernel that ran the test, null: not recorded)."""
    kernels = [c.kernel for c in matrix.columns]

    def outcomes(row: Row) -> dict[str, str | None]:
        return {k: c.outcome if c else None for k, c in zip(kernels, row.cells)}

    def properties(row: Row) -> list[dict[str, object]]:
        return [{"key": p.key, "values": {k: c.value for k, c in zip(kernels, p.cells) if c.ran}} for p in row.behaviour]

    return {
        "tests": len(matrix.rows), "outcome_differs": len(matrix.outcome_differing),
        "behaviour_differs": len(matrix.behaviour_differing), "identical": len(matrix.identical),
        "outcome": [{"suite": r.suite, "name": r.name, "outcomes": outcomes(r)} for r in matrix.outcome_differing],
        "behaviour": [{"suite": r.suite, "name": r.name, "outcomes": outcomes(r), "properties": properties(r)}
                      for r in matrix.behaviour_differing],
        "flaky": [{"suite": r.suite, "name": r.name, "counts": {k: c for k, c in zip(kernels, r.flaky) if c}}
                  for r in matrix.flaky],
    }


def load(matrix_dir: Path) -> Matrix:
    """A matrix directory as `lab matrix` left it (matrix.json naming each kernel's run)."""
    try:
        data = json.loads((matrix_dir / "matrix.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"matrix {matrix_dir}: cannot read matrix.json: {exc}") from None
    columns = []
    for entry in data.get("kernels") or []:
        run = entry.get("run")
        repetitions = tuple(matrix_dir / r for r in entry.get("repetitions") or [] if r)
        columns.append(load_column(str(entry.get("kernel")), matrix_dir / run if run else None, entry.get("seconds"),
                                   repetitions))
    return build(columns)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


NAME_WIDTH = 90  # the test-name column is cut here
VALUE_WIDTH = LONG_VALUE  # a value up to `lab compare`'s "long" is shown whole
BEHAVIOUR_TITLE = "behaviour differences (same test, other kernel behaviour recorded; measurements not compared)"


def _lines(names: list[str], cells: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    """Aligned columns: a name, then one cell per kernel, each as wide as its widest cell."""
    name_width = min(max([len(n) for n in names] + [4]), NAME_WIDTH)
    widths = [max([len(h), 4] + [len(row[i]) for row in cells]) for i, h in enumerate(header)]

    def line(name: str, row: tuple[str, ...]) -> str:
        return "  ".join([f"{_cut(name, name_width):<{name_width}}", *(f"{c:<{w}}" for c, w in zip(row, widths))]).rstrip()

    return [line(n, row) for n, row in zip(names, cells)]


def outcome_table(matrix: Matrix, show_all: bool = False) -> list[str]:
    """The header, the rows whose outcome differs, then (show_all) every other row, then the count
    of identical rows."""
    header = tuple(c.kernel for c in matrix.columns)
    rows = list(matrix.outcome_differing)
    if show_all:
        rows += [r for r in matrix.rows if not r.outcome_differs]
    lines = _lines(["test"] + [f"{r.suite}/{r.name}" for r in rows], [header] + [r.texts for r in rows], header)
    if not matrix.differing:
        lines.insert(1, "(no test differs between the kernels)")
    elif not matrix.outcome_differing:
        lines.insert(1, "(no test differs in outcome)")
    identical = matrix.identical
    if identical:
        lines.append(f"{len(identical)} identical row(s) across all kernels" + ("" if show_all else " (--all prints them)"))
    return lines


def behaviour_table(matrix: Matrix) -> list[str]:
    """Each test whose recorded behaviour differs, with its outcomes, then one line per property key
    with each kernel's value (a long value: its changed words; cut at VALUE_WIDTH)."""
    rows = matrix.behaviour_differing
    if not rows:
        return []
    header = tuple(c.kernel for c in matrix.columns)
    names, cells = ["test / property"], [header]
    for row in rows:
        names.append(f"{row.suite}/{row.name}")
        cells.append(row.texts)
        for prop in row.behaviour:
            names.append(f"  {prop.label}")
            # One line per key: a line break inside a value is shown, not printed.
            cells.append(tuple(_cut(c.shown.replace("\n", "\\n"), VALUE_WIDTH) for c in prop.cells))
    return [BEHAVIOUR_TITLE + ":", *_lines(names, cells, header)]


def flaky_table(matrix: Matrix) -> list[str]:
    """The tests flaky on some kernel (--repeat), with each such kernel's counts."""
    if not matrix.flaky:
        return []
    kernels = [c.kernel for c in matrix.columns]
    lines = ["flaky (outcome or behaviour differs between runs of one kernel; not counted as a difference):"]
    for row in matrix.flaky:
        counts = "; ".join(f"{k}: {c}" for k, c in zip(kernels, row.flaky) if c)
        lines.append(f"  {row.suite}/{row.name}: {counts}")
    return lines


def counts_line(matrix: Matrix) -> str:
    flaky = f", {len(matrix.flaky)} flaky" if matrix.flaky else ""
    return (f"{len(matrix.outcome_differing)} test(s) differ in outcome, "
            f"{len(matrix.behaviour_differing)} in recorded behaviour{flaky} ({len(matrix.rows)} tests)")


def render_table(matrix: Matrix, show_all: bool = False) -> str:
    """Rows whose outcome differs, then identical rows (only with show_all, else a count), then the
    tests whose recorded behaviour differs, then the counts and one summary line per kernel."""
    lines = outcome_table(matrix, show_all)
    for section in (behaviour_table(matrix), flaky_table(matrix)):
        if section:
            lines += ["", *section]
    lines += ["", counts_line(matrix)]
    for column in matrix.columns:
        lines.append(summary_line(column))
        if column.coverage is not None:
            lines.append(f"  {coverage_line(column)}")
    return "\n".join(lines)


def summary_line(column: Column) -> str:
    counts = " ".join(f"{column.count(t)} {t}" for t in ("pass", "FAIL", "skip", "ERR"))
    took = f"{column.seconds:.1f} s" if column.seconds is not None else "? s"
    outcome = column.outcome or "no outcome"
    runs = f"  ({column.runs} runs; the first shown)" if column.runs > 1 else ""
    return f"{column.kernel}: {outcome} ({column.reason})  {counts}  [{took}]{runs}"


def coverage_line(column: Column) -> str:
    """`lab report`'s coverage line for a --coverage kernel, its report named by its full path."""
    coverage = dict(column.coverage or {})
    if column.coverage_report is not None:
        coverage["report"] = str(column.coverage_report)
    return run_coverage_line(coverage)


def passed(matrix: Matrix) -> bool:
    return bool(matrix.columns) and all(c.outcome == "passed" for c in matrix.columns)
