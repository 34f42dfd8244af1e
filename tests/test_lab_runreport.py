"""`lab report RUN...`: a results directory printed again the way `lab run` printed it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.cli import main as cli
from lab.report import table as report
from lab.core.outcome import USER_ERROR_EXIT, Outcome, Verdict
from lab.results.model import ERROR, FAILED, PASSED, SKIPPED, SuiteResult
from lab.results.model import TestRecord as Record
from lab.results.record import RunRecord

KERNEL = {"release": "6.1.0-28-cloud-amd64", "image": "/cache/vmlinuz", "origin": "debian", "spec": "debian:6.1",
          "package": "linux-image-6.1.0-28-cloud-amd64-unsigned", "version": "6.1.119-1", "config_sha256": "c" * 64}


@pytest.fixture(autouse=True)
def results_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAB_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def a_run(root: Path, suites: list[SuiteResult], outcome: Outcome | None, reason: str = "") -> RunRecord:
    """A run directory written by the real RunRecord, as `lab run` leaves it."""
    record = RunRecord.create(root, KERNEL["release"], {"kernel": "debian:6.1", "suites": [s.name for s in suites],
                                                        "accel": "auto"})
    record.update(kernel=KERNEL)
    for suite in suites:
        record.add_suite(suite)
    if outcome is not None:
        record.finish(Verdict(outcome, reason))
    return record


def green() -> list[SuiteResult]:
    return [SuiteResult("maps", [Record("maps", f"test_maps.py::t{i}", PASSED, 0.1) for i in range(5)]
                        + [Record("maps", "test_maps.py::s", SKIPPED, 0.0, skip_reason="old kernel")], 22.94, 0),
            SuiteResult("pin", [Record("pin", "test_pin.py::t", PASSED, 0.2)], 6.02, 0)]


def red() -> list[SuiteResult]:
    return [SuiteResult("maps", [Record("maps", "test_maps.py::ok", PASSED, 0.1),
                                 Record("maps", "test_maps.py::TestHash::test_update[4]", FAILED, 0.1,
                                        "AssertionError: errno\nassert 'EBUSY' == 'EPERM'")], 3.0, 1),
            SuiteResult("dump", [Record("dump", "test_dump.py::test_batch", ERROR, 0.0, "timed out: the suite")],
                        600.0, None, "timed out: the suite did not finish within 600 s")]


def lab(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_passed_run_prints_as_lab_run_did(results_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suites = green()
    record = a_run(results_root, suites, Outcome.PASSED, "every suite passed")
    code, out, err = lab(["report", str(record.directory)], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == ("kernel: 6.1.0-28-cloud-amd64 (debian:6.1 = linux-image-6.1.0-28-cloud-amd64-unsigned "
                        f"6.1.119-1; config sha256 {'c' * 64})")
    # The table `lab run` printed, line for line, from what the run recorded.
    assert lines[1:4] == [report.HEADER, *(report.suite_line(s) for s in suites)]
    assert lines[4] == "outcome: passed (every suite passed)"
    assert lines[5].startswith(f"results: {record.directory}  [") and lines[5].endswith(" s]")
    assert len(lines) == 6


def test_a_failed_run_names_each_failing_test_and_exits_1(results_root: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    suites = red()
    record = a_run(results_root, suites, Outcome.TIMED_OUT, "suite dump: timed out")
    code, out, _ = lab(["report", record.directory.name], capsys)  # a run id under $LAB_RESULTS
    assert code == 1
    lines = out.splitlines()
    assert lines[2] == report.suite_line(suites[0])
    assert lines[3] == report.suite_line(suites[1]) and lines[3].endswith("(timed out: the suite did not finish within 600 s)")
    assert lines[4:7] == ["FAILED maps test_maps.py::TestHash::test_update[4]: AssertionError: errno",
                          "    assert 'EBUSY' == 'EPERM'",
                          "ERROR dump test_dump.py::test_batch: timed out: the suite"]
    assert lines[7] == "outcome: timed-out (suite dump: timed out)"


def test_several_runs_exit_0_only_if_every_one_passed(results_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passed = a_run(results_root, green(), Outcome.PASSED, "every suite passed")
    failed = a_run(results_root, red(), Outcome.FAILED, "failures in suite(s): maps, dump")
    code, out, _ = lab(["report", str(passed.directory), str(failed.directory)], capsys)
    assert code == 1
    blocks = out.split("\n\n")
    assert len(blocks) == 2
    assert f"results: {passed.directory}" in blocks[0] and f"results: {failed.directory}" in blocks[1]
    assert lab(["report", str(passed.directory), str(passed.directory / "results.json")], capsys)[0] == 0


def test_a_run_that_never_finished(results_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = a_run(results_root, green()[:1], None)  # SIGKILLed after the first suite
    code, out, _ = lab(["report", str(record.directory)], capsys)
    assert code == 1
    assert out.splitlines()[-2:] == ["outcome: none (the run did not finish: killed, or still running)",
                                     f"results: {record.directory}"]


def test_a_run_that_did_not_boot(results_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = a_run(results_root, [], Outcome.BOOT_FAILED, "QEMU exited before init was ready")
    code, out, _ = lab(["report", str(record.directory)], capsys)
    assert code == 1
    assert out.splitlines()[1:3] == ["no suite ran", "outcome: boot-failed (QEMU exited before init was ready)"]


@pytest.mark.parametrize("damage, needle", [
    (lambda d: (d / "results.json").unlink(), "no results.json"),
    (lambda d: (d / "results.json").write_text("{"), "results.json"),
    (lambda d: (d / "results.json").write_text(json.dumps({"tests": []})), "no list of suites"),
    (lambda d: (d / "results.json").write_text(json.dumps({"tests": [], "suites": [{"suite": "maps",
                                                           "wall_seconds": "slow"}]})), "wall_seconds"),
])
def test_an_unreadable_run_is_one_line_exit_2_and_nothing_printed(damage: object, needle: str, results_root: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    good = a_run(results_root, green(), Outcome.PASSED, "every suite passed")
    bad = a_run(results_root, green(), Outcome.PASSED, "every suite passed")
    damage(bad.directory)  # type: ignore[operator]
    code, out, err = lab(["report", str(good.directory), str(bad.directory)], capsys)
    assert code == USER_ERROR_EXIT
    assert out == ""  # the good run is not half of an answer
    assert err.startswith("lab: error: ") and needle in err and len(err.strip().splitlines()) == 1


def test_a_missing_run_and_no_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = lab(["report", str(tmp_path / "nope")], capsys)
    assert code == USER_ERROR_EXIT and "no such directory" in err
    with pytest.raises(SystemExit):
        cli.main(["report"])
