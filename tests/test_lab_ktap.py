"""`lab report --format ktap`: the layout KTAP and KUnit's parser need, on runs written by the
lab's own RunRecord. (The kernel's kunit_parser reads real runs in tests/test_e2e_ktap.py.)"""
from __future__ import annotations

import re
from pathlib import Path

from e2ehelpers import lab

from lab.core.outcome import Outcome, Verdict
from lab.report import ktap
from lab.results.load import load_run
from lab.results.model import ERROR, FAILED, PASSED, SKIPPED, SuiteResult
from lab.results.model import TestRecord as Record
from lab.results.record import RunRecord


def a_run(tmp_path: Path, suites: list[SuiteResult], outcome: Outcome = Outcome.FAILED) -> Path:
    record = RunRecord.create(tmp_path / "run", "debian:6.1", {"kernel": "debian:6.1", "suites": ["maps", "pin"]})
    for suite in suites:
        record.add_suite(suite)
    record.finish(Verdict(outcome, "failures in suite(s): maps" if outcome is Outcome.FAILED else "every suite passed"))
    return record.directory


MAPS = SuiteResult("maps", [
    Record("maps", "test_a.py::test_passes", PASSED, 0.1),
    Record("maps", "test_a.py::test_fails[x#1]", FAILED, 0.2, "AssertionError: errno\nassert 'EPERM' == 'EBUSY'"),
    Record("maps", "test_a.py::test_skips", SKIPPED, 0.0, skip_reason="needs BPF_MAP_DUMP (this kernel: EINVAL)"),
    Record("maps", "test_a.py::test_errors", ERROR, 0.0, "fixture 'features' failed"),
], 12.0, 1)
PIN_CUT_SHORT = SuiteResult("pin", [Record("pin", "test_p.py::test_first", PASSED, 0.1)], 300.0, None,
                            "timed out: suite pin after 300 s")


def test_each_outcome_has_its_result_line_and_diagnostics(tmp_path: Path) -> None:
    text = ktap.render(load_run(str(a_run(tmp_path, [MAPS]))))
    lines = text.splitlines()
    assert lines[:5] == ["KTAP version 1", "1..1", "    KTAP version 1", "    # Subtest: maps", "    1..4"]
    assert "    ok 1 test_a.py::test_passes" in lines
    # A failure: its message as diagnostics right before its result line; '#' would end the name.
    failed = lines.index("    not ok 2 test_a.py::test_fails[x%231]")
    assert lines[failed - 2:failed] == ["    # AssertionError: errno", "    # assert 'EPERM' == 'EBUSY'"]
    assert "    ok 3 test_a.py::test_skips # SKIP needs BPF_MAP_DUMP (this kernel: EINVAL)" in lines
    errored = lines.index("    not ok 4 test_a.py::test_errors")
    assert lines[errored - 1] == "    # fixture 'features' failed"
    assert lines[errored + 1:errored + 3] == ["# maps: pass:1 fail:2 skip:1 total:4", "not ok 1 maps"]
    assert "# Totals: pass:1 fail:2 skip:1 total:4" in lines
    assert re.search(r"^# lab run \S+: outcome failed \(failures in suite\(s\): maps\)$", text, re.MULTILINE)


def test_a_suite_cut_short_is_not_ok_with_its_reason(tmp_path: Path) -> None:
    text = ktap.render(load_run(str(a_run(tmp_path, [MAPS, PIN_CUT_SHORT]))))
    lines = text.splitlines()
    assert lines[1] == "1..2"
    pin = lines.index("    # Subtest: pin")
    # One test more planned than reported: KTAP's way to say the suite stopped short.
    assert lines[pin:pin + 5] == ["    # Subtest: pin", "    1..2", "    ok 1 test_p.py::test_first",
                                  "    # suite pin did not finish: timed out: suite pin after 300 s",
                                  "# pin: pass:1 fail:0 skip:0 total:1"]
    assert lines[pin + 5] == "not ok 2 pin"


def test_a_green_run_is_all_ok(tmp_path: Path) -> None:
    green = SuiteResult("pin", [Record("pin", "test_p.py::test_first", PASSED, 0.1)], 3.0, 0)
    text = ktap.render(load_run(str(a_run(tmp_path, [green], Outcome.PASSED))))
    assert "not ok" not in text and "ok 1 pin" in text.splitlines()


def test_the_command_prints_one_run_and_refuses_two(tmp_path: Path) -> None:
    run = a_run(tmp_path, [MAPS])
    printed = lab("report", "--format", "ktap", str(run))
    assert printed.returncode == 1 and printed.stdout == ktap.render(load_run(str(run)))
    two = lab("report", "--format", "ktap", str(run), str(run))
    assert two.returncode == 2 and two.stdout == ""
    assert two.stderr.strip().splitlines() == ["lab: error: --format ktap prints one run as one KTAP document: got 2 runs"]
