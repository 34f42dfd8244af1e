"""`lab report --format ktap` read by the kernel's own kunit_parser (tests/kunitparser.py) on a
run with every kind of result: each failure, skip and a suite cut short is what it sees. (Real
runs are parsed, counts against results.json, in test_e2e_boot.)"""
from __future__ import annotations

from pathlib import Path

import pytest
from kunitparser import kunit_parser, parsed
from test_lab_ktap import MAPS, PIN_CUT_SHORT, a_run

pytestmark = pytest.mark.boot  # not a boot, but Debian's kernel source: downloaded once, as the boots' kernels


def test_failures_skips_and_a_suite_cut_short_are_what_the_parser_sees(tmp_path: Path) -> None:
    test = parsed(a_run(tmp_path, [MAPS, PIN_CUT_SHORT]))
    maps, pin = test.subtests
    status = kunit_parser().TestStatus
    assert [(t.name, t.status) for t in maps.subtests] == [
        ("test_a.py::test_passes", status.SUCCESS), ("test_a.py::test_fails[x%231]", status.FAILURE),
        ("test_a.py::test_skips", status.SKIPPED), ("test_a.py::test_errors", status.FAILURE)]
    assert "assert 'EPERM' == 'EBUSY'" in "\n".join(maps.subtests[1].log)
    assert maps.status == status.FAILURE
    # The suite that timed out: its finished test passed, the missing one counts as crashed.
    assert (pin.counts.passed, pin.counts.crashed) == (1, 1) and pin.status == status.TEST_CRASHED
    assert any("did not finish: timed out" in line for line in pin.subtests[-1].log)  # the missing one's log
    assert test.status == status.TEST_CRASHED
