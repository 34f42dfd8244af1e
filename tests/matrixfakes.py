"""Synthetic `lab matrix` directories for the matrix tests: real RunRecords (so results.json and
metadata.json are exactly what `lab run` writes), two kernels, one test that differs."""
from __future__ import annotations

import json
from pathlib import Path

from lab.core.outcome import Outcome, Verdict
from lab.results.model import FAILED, PASSED, SKIPPED, SuiteResult
from lab.results.model import TestRecord as Record
from lab.results.record import RunRecord

DIFFERING = "test_freeze.py::test_second_freeze"


def suites(kernel: str, identical: int) -> list[SuiteResult]:
    second = (Record("maps", DIFFERING, PASSED, 0.1) if kernel == "debian:6.1" else
              Record("maps", DIFFERING, FAILED, 0.1, "AssertionError: errno\nassert 'EPERM' == 'EBUSY'"))
    maps = [second] + [Record("maps", f"test_maps.py::test_same[{i:02d}]", PASSED, 0.1) for i in range(identical)]
    pin = [Record("pin", "test_pin.py::test_old_flag", SKIPPED, 0.0, skip_reason="not on this kernel")]
    return [SuiteResult("maps", maps, 20.0 if kernel == "debian:6.1" else 31.5, 0 if kernel == "debian:6.1" else 1),
            SuiteResult("pin", pin, 5.0, 0)]


def matrix_dir(tmp: Path, identical: int = 30) -> Path:
    """runs/<n>-<kernel>/<run>/ with console.log, and matrix.json naming them, as `lab matrix` leaves it."""
    root = tmp / "matrix-test"
    kernels = []
    for index, kernel in enumerate(("debian:6.1", "debian:6.12")):
        record = RunRecord.create(root / "runs" / f"{index + 1}-{kernel.replace(':', '-')}", kernel,
                                  {"kernel": kernel, "suites": ["maps", "pin"], "accel": "auto"})
        record.update(kernel={"release": "6.1.0-28-cloud-amd64" if index == 0 else "6.12.9-cloud-amd64"})
        for suite in suites(kernel, identical):
            record.add_suite(suite)
        (record.directory / "console.log").write_text("Linux version ...\n")
        failed = kernel != "debian:6.1"
        record.finish(Verdict(Outcome.FAILED if failed else Outcome.PASSED,
                              "failures in suite(s): maps" if failed else "every suite passed"))
        kernels.append({"kernel": kernel, "run": str(record.directory.relative_to(root)),
                        "log": f"runs/{record.directory.parent.name}/lab.log", "exit_code": int(failed),
                        "seconds": 60.0 + index})
    (root / "matrix.json").write_text(json.dumps({"suites": ["maps", "pin"], "jobs": 2, "kernels": kernels}))
    return root
