"""The matrix as one self-contained HTML page (templates/matrix.html.j2): inline CSS, no
script, no external URL, so it can be mailed or archived as a single file. One table per test
whose recorded behaviour differs (a column per kernel; first, since a long matrix would bury
them), the outcome matrix, messages, suite times.

The page's geometry (the SVG bar chart of suite wall times) is computed here, so the template
only lays out numbers it is given.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import jinja2

from ..results import layout
from . import table as matrix

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Outcome colours; the browser test looks for exactly these pixels in a screenshot.
COLOURS = {"pass": "#78c878", "fail": "#e64646", "skip": "#f0c850", "err": "#aa50c8", "missing": "#ffffff"}
VALUE_COLOUR = "#cfe0f6"  # a recorded value that differs between the kernels (the browser test looks for it)
BAR_COLOURS = ("#3b6fb6", "#7fa7dd", "#1f3f6e", "#9bb9e6", "#5a86c8", "#2c5491")
CHART_WIDTH = 520  # px for the longest bar
BAR_HEIGHT, BAR_GAP, LABEL_WIDTH = 16, 4, 230
# Behaviour tables: about one character of the 13 px bold test name, of the 12-13 px monospace value.
NAME_CHAR_PX, VALUE_CHAR_PX, MAX_NAME_PX, MAX_VALUE_PX = 9, 8, 760, 420


@dataclass(frozen=True)
class Bar:
    label: str
    seconds: float
    y: int
    width: int
    colour: str


def chart(columns: tuple[matrix.Column, ...]) -> tuple[list[Bar], int]:
    """One bar per (suite, kernel), grouped by suite; the bars and the chart's height."""
    suites = list(dict.fromkeys(t.suite for c in columns for t in c.suites))
    longest = max([t.wall_seconds for c in columns for t in c.suites] + [0.001])
    bars, y = [], 0
    for suite in suites:
        for index, column in enumerate(columns):
            seconds = next((t.wall_seconds for t in column.suites if t.suite == suite), None)
            if seconds is None:
                continue
            bars.append(Bar(f"{suite} · {column.kernel}", seconds, y, max(1, round(CHART_WIDTH * seconds / longest)),
                            BAR_COLOURS[index % len(BAR_COLOURS)]))
            y += BAR_HEIGHT + BAR_GAP
        y += BAR_GAP * 2
    return bars, y


def behaviour_widths(m: matrix.Matrix) -> tuple[int, int]:
    """The px width of the behaviour tables' name column and of each kernel's column: the same in
    every table, so that one kernel's values line up down the page."""
    rows = m.behaviour_differing
    names = [len(f"{r.suite}/{r.name}") for r in rows] + [len(p.label) for r in rows for p in r.behaviour]
    values = [len(c.kernel) for c in m.columns] + [len(v.shown) for r in rows for p in r.behaviour for v in p.cells]
    return (min(NAME_CHAR_PX * max(names + [10]) + 16, MAX_NAME_PX),
            min(VALUE_CHAR_PX * max(values + [10]) + 24, MAX_VALUE_PX))


def _console_link(column: matrix.Column, report_dir: Path) -> str | None:
    if column.directory is None or not (column.directory / layout.CONSOLE).exists():
        return None
    return Path(os.path.relpath(column.directory / layout.CONSOLE, report_dir)).as_posix()


def _coverage_link(column: matrix.Column, report_dir: Path) -> str | None:
    report = column.coverage_report
    return Path(os.path.relpath(report, report_dir)).as_posix() if report else None


def render(m: matrix.Matrix, report_dir: Path, title: str = "bpf-kernel-lab matrix") -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    bars, height = chart(m.columns)
    # In-page links from a matrix row to its behaviour table.
    anchors = {(r.suite, r.name): f"behaviour-{index}" for index, r in enumerate(m.behaviour_differing, 1)}
    name_px, value_px = behaviour_widths(m)
    return env.get_template("matrix.html.j2").render(
        title=title, matrix=m, columns=m.columns, differing=m.differing, identical=m.identical,
        behaviour=m.behaviour_differing, value_colour=VALUE_COLOUR, anchors=anchors,
        name_px=name_px, value_px=value_px,
        colours=COLOURS, cell_class=matrix.CELL_CLASS, cell_text=matrix.cell_text,
        consoles=[_console_link(c, report_dir) for c in m.columns], summary=matrix.summary_line,
        coverage_reports=[_coverage_link(c, report_dir) for c in m.columns], coverage_line=matrix.coverage_line,
        bars=bars, chart_height=height, bar_height=BAR_HEIGHT, label_width=LABEL_WIDTH, chart_width=CHART_WIDTH)


def write(m: matrix.Matrix, report: Path) -> Path:
    report.write_text(render(m, report.parent))
    return report
