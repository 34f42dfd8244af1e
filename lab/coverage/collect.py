"""After a coverage run: each suite's counters into a gcovr trace, the traces merged into the
run's, coverage.json and the HTML report written into the run directory."""
from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.errors import InfraError
from ..core.files import local_file
from ..kernel.profiling import DIRECTORIES
from ..results import layout
from . import counters, gcovr
from .summary import load_trace, summary

# gcovr's JSON traces (every line's, function's and branch's count), gzipped: 4 MB each unpacked.
RUN_TRACE = "all.json.gz"  # in the run's coverage/: every suite's counts summed


def suite_trace(run_dir: Path, suite: str) -> Path:
    return run_dir / layout.COVERAGE_DATA / f"{suite}.json.gz"


def run_trace(run_dir: Path) -> Path:
    return run_dir / layout.COVERAGE_DATA / RUN_TRACE


def html_index(run_dir: Path) -> Path:
    return run_dir / layout.COVERAGE_DATA / "html" / "index.html"


def trace_suite(run_dir: Path, material: Path, suite: str, scratch: Path) -> Path | None:
    """The suite's gcovr trace, written beside its counters; None when it brought no counters.
    `scratch`: an empty directory of the caller's to lay the counters out in."""
    packed = layout.suite_counters(run_dir, suite)
    if not packed.is_file():
        return None
    if counters.lay_out(packed, material, scratch) == 0:
        raise InfraError(f"suite {suite}'s gcov counters hold no file of the build's object directory")
    gcovr.trace(scratch, suite_trace(run_dir, suite))
    return suite_trace(run_dir, suite)


def analyse(run_dir: Path, material: Path, suites: list[str], title: str,
            traced: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """coverage.json's content, written with the traces and the HTML; InfraError when no suite
    brought counters or gcov cannot read them. `traced`: the suites whose traces are already
    written (tracing.SuiteTraces made them while the next suite ran); the others are traced here."""
    traces: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="lab-coverage-") as scratch:
        for suite in suites:
            path = (traced or {}).get(suite) or trace_suite(run_dir, material, suite, Path(scratch) / suite)
            if path is not None:
                traces[suite] = path
    if not traces:
        raise InfraError("no suite brought the kernel's gcov counters back")
    gcovr.merge(material, list(traces.values()), run_trace(run_dir), html_index(run_dir), title)
    data = summary(DIRECTORIES, load_trace(run_trace(run_dir)),
                   {suite: load_trace(path) for suite, path in traces.items()})
    data["html"] = str(html_index(run_dir).relative_to(run_dir))
    path = run_dir / layout.COVERAGE
    with local_file(path, "writing"):
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data
