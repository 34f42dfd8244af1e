"""`lab validate`'s report.html: self-contained (inline CSS, no script, no external URL), like
the matrix report. The table of versions first, then per version its base and patched runs side
by side (build, kernel, outcome, suites) and the tests that changed between them."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import jinja2

from ..coverage import collect
from ..report import compare_text
from ..report.compare import CATEGORIES
from ..results import layout
from ..results.load import LoadedRun
from . import table as vtable
from .pipeline import SIDES
from .verdict import DOES_NOT_APPLY, NO_REGRESSION, REGRESSED, UNDECIDED

TEMPLATES = Path(__file__).resolve().parent / "templates"
VERDICT_COLOURS = {NO_REGRESSION: "#78c878", REGRESSED: "#e64646", DOES_NOT_APPLY: "#f0c850", UNDECIDED: "#aa50c8"}
VERDICT_CLASS = {kind: "verdict-" + kind.replace(" ", "-") for kind in VERDICT_COLOURS}


@dataclass(frozen=True)
class Side:
    """One column of a version's side-by-side block."""
    name: str
    build: str
    kernel: str
    outcome: str
    suites: list[str]
    console: str | None
    coverage: str | None = None  # a --coverage run's gcovr report


def _side(row: vtable.Row, side: str, report_dir: Path) -> Side:
    step = row.state.builds.get(side)
    build = (step.error or f"build:{step.build_id}" + (" (cached)" if step.cached else "")) if step else vtable.NONE
    run: LoadedRun | None = row.run(side)
    if run is None:
        return Side(side, build, vtable.NONE, vtable.outcome_cell(row, side), [], None)
    console = run.directory / layout.CONSOLE
    coverage = collect.html_index(run.directory)
    return Side(side, build, compare_text.kernel_line(run),
                (run.outcome or "unfinished") + (f" ({run.reason})" if run.reason else ""),
                [f"{s.name}: {s.count('passed')} passed, {s.count('failed')} failed, {s.count('skipped')} skipped, "
                 f"{s.wall_seconds:.1f} s" for s in run.suites],
                Path(os.path.relpath(console, report_dir)).as_posix() if console.exists() else None,
                Path(os.path.relpath(coverage, report_dir)).as_posix() if coverage.exists() else None)


def render(table: list[vtable.Row], report_dir: Path, title: str = "bpf-kernel-lab validate") -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("validate.html.j2").render(
        title=title, rows=table, headers=vtable.headers(table), cells=vtable.cells, colours=VERDICT_COLOURS,
        verdict_class=VERDICT_CLASS,
        sides={id(row): [_side(row, side, report_dir) for side in SIDES] for row in table},
        categories=CATEGORIES, titles=compare_text.TITLES, change_line=compare_text.change_line,
        property_line=compare_text.property_line, summary_line=compare_text.summary_line, id=id)


def write(table: list[vtable.Row], report: Path) -> Path:
    report.write_text(render(table, report.parent))
    return report
