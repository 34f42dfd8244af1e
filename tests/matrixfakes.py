"""Synthetic `lab matrix` directories for the matrix tests: real RunRecords (so results.json and
metadata.json are exactly what `lab run` writes), two kernels, one test that differs in outcome,
and (with behaviour=True) tests that pass on both but record other kernel behaviour."""
from __future__ import annotations

import json
from pathlib import Path

from lab.core.outcome import Outcome, Verdict
from lab.results.model import FAILED, PASSED, SKIPPED, SuiteResult
from lab.results.model import TestRecord as Record
from lab.results.record import RunRecord

DIFFERING = "test_freeze.py::test_second_freeze"
# behaviour=True: the same outcome on both kernels, other recorded behaviour.
SECOND_FREEZE = "test_maps_access.py::test_freeze_twice"  # a value that differs
READONLY_FREEZE = "test_maps_access.py::test_freeze_through_readonly_fd"  # a key one kernel did not record
BPFTOOL = "test_cli_vs_bpftool.py::test_operations_match_bpftool[hash]"  # a long value, one word differs
CONCURRENCY = "test_maps_concurrency.py::test_concurrent_writers_and_walker"  # measurements only: not a difference
TRANSCRIPT = " ".join(f"{i}:update=ok" for i in range(20))


def newer(kernel: str) -> bool:
    """The fake kernels behave as 6.1 or as 6.12, by their spec (debian:6.1.0-57 is a 6.1)."""
    return kernel.startswith("debian:6.12")


def behaviour_records(kernel: str, run: int) -> list[Record]:
    new = newer(kernel)
    return [
        Record("maps", SECOND_FREEZE, PASSED, 0.1,
               properties={"second_freeze_errno": "EPERM" if new else "EBUSY", "fd_kind": "map",  # fd_kind: the same
                           "strerror": "Operation not permitted <EPERM>" if new else "Device or resource busy & <EBUSY>"}),
        Record("maps", READONLY_FREEZE, PASSED, 0.1, properties={} if new else {"freeze_rdonly_fd": "ok"}),
        Record("maps", BPFTOOL, PASSED, 0.1,
               properties={"outcomes": f"{TRANSCRIPT} 27:freeze={'EPERM' if new else 'EBUSY'} 28:lookup=ok"}),
        # Times and work done in a time window change from run to run (and kernel to kernel).
        Record("maps", CONCURRENCY, PASSED, 3.0 + run,
               properties={"concurrency_seconds": f"{2.5 + run + new:.2f}", "walker_walks": str(15 + run + 3 * new),
                           "walker_values_checked": str(5254 + 100 * run + 7 * new), "writers": "4"}),
    ]


def suites(kernel: str, identical: int, behaviour: bool = False, run: int = 0) -> list[SuiteResult]:
    old = not newer(kernel)
    second = (Record("maps", DIFFERING, PASSED, 0.1) if old else
              Record("maps", DIFFERING, FAILED, 0.1, "AssertionError: errno\nassert 'EPERM' == 'EBUSY'"))
    maps = [second] + [Record("maps", f"test_maps.py::test_same[{i:02d}]", PASSED, 0.1) for i in range(identical)]
    if behaviour:
        maps += behaviour_records(kernel, run)
    pin = [Record("pin", "test_pin.py::test_old_flag", SKIPPED, 0.0, skip_reason="not on this kernel")]
    return [SuiteResult("maps", maps, 20.0 if old else 31.5, 0 if old else 1),
            SuiteResult("pin", pin, 5.0, 0)]


def matrix_dir(tmp: Path, identical: int = 30, behaviour: bool = False,
               kernels: tuple[str, ...] = ("debian:6.1", "debian:6.12")) -> Path:
    """runs/<n>-<kernel>/<run>/ with console.log, and matrix.json naming them, as `lab matrix` leaves it."""
    root = tmp / "matrix-test"
    entries = []
    for index, kernel in enumerate(kernels):
        record = RunRecord.create(root / "runs" / f"{index + 1}-{kernel.replace(':', '-')}", kernel,
                                  {"kernel": kernel, "suites": ["maps", "pin"], "accel": "auto"})
        record.update(kernel={"release": "6.12.9-cloud-amd64" if newer(kernel) else "6.1.0-28-cloud-amd64"})
        for suite in suites(kernel, identical, behaviour, run=index):
            record.add_suite(suite)
        (record.directory / "console.log").write_text("Linux version ...\n")
        failed = newer(kernel)
        record.finish(Verdict(Outcome.FAILED if failed else Outcome.PASSED,
                              "failures in suite(s): maps" if failed else "every suite passed"))
        entries.append({"kernel": kernel, "run": str(record.directory.relative_to(root)),
                        "log": f"runs/{record.directory.parent.name}/lab.log", "exit_code": int(failed),
                        "seconds": 60.0 + index})
    (root / "matrix.json").write_text(json.dumps({"suites": ["maps", "pin"], "jobs": 2, "kernels": entries}))
    return root
