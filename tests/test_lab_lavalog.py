"""Reading lava-run's log, against logs captured from real lava-run jobs (tests/golden/lava/)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.lava import log as lavalog
from lab.results.model import ERROR, FAILED, PASSED, SKIPPED

GOLDEN = Path(__file__).parent / "golden" / "lava"
PASSED_LOG = (GOLDEN / "pin-passed-6.1.192.log").read_text()


def test_a_passing_job_gives_every_pin_test_with_its_pytest_name() -> None:
    parsed = lavalog.parse(PASSED_LOG)
    assert parsed.job_result is not None and parsed.job_result["result"] == "pass"
    assert parsed.booted and parsed.definitions() == ["0_pin"]
    suite = lavalog.suite_result(parsed, "0_pin")
    assert suite.name == "pin" and suite.ok and suite.pytest_rc == 0 and suite.error == ""
    assert len(suite.records) == 40 and {r.outcome for r in suite.records} == {PASSED}
    names = {r.name for r in suite.records}
    assert "test_pin_access.py::test_obj_get_flags_decide_what_the_fd_may_do[RDONLY]" in names
    assert all(r.suite == "pin" and r.duration >= 0 for r in suite.records)
    assert suite.wall_seconds > 0


def test_results_are_lavas_own_form() -> None:
    parsed = lavalog.parse(PASSED_LOG)
    cases = parsed.cases("0_pin")
    assert len(cases) == 41  # 40 tests and pytest's exit status
    assert cases["pytest-exit"]["result"] == "pass" and float(cases["pytest-exit"]["measurement"]) == 0
    one = cases["test_pin_access.test_obj_get_flags_decide_what_the_fd_may_do_RDONLY"]
    assert one["result"] == "pass" and one["units"] == "seconds"
    assert {r["case"] for r in parsed.lava_results()} >= {"job", "login-action", "0_pin"}


def test_the_console_is_given_back_without_lavas_escaping() -> None:
    parsed = lavalog.parse(PASSED_LOG)
    console = "\n".join(parsed.console)
    assert "Linux version 6.1.0-56-cloud-amd64" in console
    assert "lab-ready: root shell on the console for LAVA" in console
    assert '@@lab-test {"event": "start"' in console and '\\"' not in console
    lines = parsed.definition_console["0_pin"]
    assert lines[0].startswith("<LAVA_SIGNAL_STARTRUN 0_pin") and lines[-1].startswith("<LAVA_SIGNAL_ENDRUN 0_pin")


@pytest.mark.parametrize("lost, name", [
    (("duration",), "test_pin_tree.py::test_unlink_and_rmdir"),  # its end line: the start names it
    (("duration", "start"), "test_pin_tree.test_unlink_and_rmdir"),  # both: LAVA's case name
])
def test_a_lost_console_line_keeps_lavas_word_for_that_test(lost: tuple[str, ...], name: str) -> None:
    # Kernel output inside the lab's line breaks it; LAVA's result for the case still counts.
    kept = [line for line in PASSED_LOG.splitlines()
            if not ("@@lab-test" in line and "test_unlink_and_rmdir" in line and any(word in line for word in lost))]
    assert len(kept) == len(PASSED_LOG.splitlines()) - len(lost)
    suite = lavalog.suite_result(lavalog.parse("\n".join(kept)), "0_pin")
    assert len(suite.records) == 40 and suite.ok
    assert [(r.name, r.outcome) for r in suite.records if "unlink_and_rmdir" in r.name] == [(name, PASSED)]


def test_lava_and_the_test_disagreeing_is_an_error() -> None:
    case = "test_pin_access.test_obj_get_flags_decide_what_the_fd_may_do_RDONLY"
    changed = re.sub(r'("case": "' + case + r'".*"result": )"pass"', r'\1"fail"', PASSED_LOG, count=1)
    assert changed != PASSED_LOG
    suite = lavalog.suite_result(lavalog.parse(changed), "0_pin")
    wrong = [r for r in suite.records if r.outcome != PASSED]
    assert len(wrong) == 1 and wrong[0].outcome == ERROR
    assert wrong[0].message == "LAVA recorded fail, the test reported passed"
    assert not suite.ok


def test_a_log_cut_short_leaves_the_running_test_as_an_error() -> None:
    # lava-run killed in the middle of the suite: no job result, no pytest exit status.
    lines = PASSED_LOG.splitlines()
    at = next(i for i, line in enumerate(lines) if "@@lab-test" in line and "test_pin_tree.py" in line and "start" in line)
    parsed = lavalog.parse("\n".join(lines[: at + 1]) + '\n{"dt": "2026-11-22T09:1')
    assert parsed.job_result is None
    suite = lavalog.suite_result(parsed, "0_pin")
    assert suite.pytest_rc is None and "did not finish" in suite.error and not suite.ok
    errors = [r for r in suite.records if r.outcome == ERROR]
    assert len(errors) == 1 and errors[0].name.startswith("test_pin_tree.py::")


@pytest.mark.parametrize("definition, suite", [("0_maps", "maps"), ("12_pin", "pin"), ("dump", "dump")])
def test_suite_names_lose_lavas_index(definition: str, suite: str) -> None:
    assert lavalog.suite_name(definition) == suite


def test_lines_that_are_not_lava_entries_are_ignored() -> None:
    parsed = lavalog.parse('Traceback (most recent call last):\n{"dt": "x", "lvl": "error", "msg": "boom"}\n{broken\n')
    assert parsed.errors == ["boom"] and parsed.results == [] and parsed.job_result is None


@pytest.mark.parametrize("name, outcomes", [
    ("pin-failed-6.1.192.log", {"test_zz_golden.py::test_passes": PASSED, "test_zz_golden.py::test_fails": FAILED,
                                "test_zz_golden.py::test_skips": SKIPPED}),
])
def test_failing_and_skipped_tests_under_lava(name: str, outcomes: dict[str, str]) -> None:
    parsed = lavalog.parse((GOLDEN / name).read_text())
    assert parsed.job_result is not None and parsed.job_result["result"] == "pass"  # LAVA: the job itself was fine
    suite = lavalog.suite_result(parsed, "0_pin")
    got = {r.name: r.outcome for r in suite.records if r.name.startswith("test_zz_golden.py")}
    assert got == outcomes
    assert suite.pytest_rc == 1 and not suite.ok
    failed = next(r for r in suite.records if r.outcome == FAILED)
    assert "arithmetic" in failed.message
    assert parsed.cases("0_pin")["test_zz_golden.test_fails"]["result"] == "fail"
    assert parsed.cases("0_pin")["test_zz_golden.test_skips"]["result"] == "skip"
