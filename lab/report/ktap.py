"""`lab report --format ktap RUN`: a run as KTAP version 1, the test output format of kselftest
and KUnit (Documentation/dev-tools/ktap.rst), so the kernel's own tools read the lab's results.

One subtest per suite, one result line per test, laid out as KUnit prints it (what the kernel's
tools/testing/kunit/kunit_parser.py reads, and what tests/test_e2e_ktap.py parses it with):

    KTAP version 1
    1..3
        KTAP version 1
        # Subtest: maps
        1..465
        ok 1 test_map_basics.py::test_update_noexist
        # <a failure's message, one diagnostic line each>
        not ok 2 test_maps_hash.py::test_delete[hash]
        ok 3 test_maps_bloom.py::test_peek # SKIP <why>
    # maps: pass:1 fail:1 skip:1 total:3
    not ok 1 maps
    # Totals: pass:1 fail:1 skip:1 total:3
    # kernel: <the kernel's identity>
    # lab run <run id>: outcome failed (<why>)

Failed and error are both `not ok` (KTAP has no error result). A suite that did not finish
(timed out, lost its connection, wrote no report) plans one test more than it reports, the tests
it finished, then the reason as a diagnostic and `not ok`: KTAP readers count the missing test as
crashed, as KUnit's parser does when the kernel dies in the middle of a suite.
"""
from __future__ import annotations

from ..kernel import ident as kernelident
from ..results.load import LoadedRun
from ..results.model import ERROR, FAILED, PASSED, SKIPPED, SuiteResult, TestRecord

INDENT = "    "


def _description(text: str) -> str:
    """One line without '#': KTAP ends a test's description at the first '#' (a directive)."""
    return " ".join(text.replace("#", "%23").split())


def _diagnostics(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}".rstrip() for line in text.splitlines() if line.strip()]


def _test_lines(number: int, record: TestRecord) -> list[str]:
    name = _description(record.name)
    if record.outcome == PASSED:
        return [f"{INDENT}ok {number} {name}"]
    if record.outcome == SKIPPED:
        return [f"{INDENT}ok {number} {name} # SKIP {_description(record.skip_reason)}".rstrip()]
    return [*_diagnostics(record.message or record.outcome, INDENT), f"{INDENT}not ok {number} {name}"]


def _counts(passed: int, failed: int, skipped: int) -> str:
    return f"pass:{passed} fail:{failed} skip:{skipped} total:{passed + failed + skipped}"


def _suite_counts(suite: SuiteResult) -> tuple[int, int, int]:
    return suite.count(PASSED), suite.count(FAILED) + suite.count(ERROR), suite.count(SKIPPED)


def _suite_lines(number: int, suite: SuiteResult) -> list[str]:
    planned = len(suite.records) + (1 if suite.error else 0)
    lines = [f"{INDENT}KTAP version 1", f"{INDENT}# Subtest: {_description(suite.name)}", f"{INDENT}1..{planned}"]
    for index, record in enumerate(suite.records, start=1):
        lines += _test_lines(index, record)
    if suite.error:
        lines += _diagnostics(f"suite {suite.name} did not finish: {suite.error}", INDENT)
    elif suite.pytest_rc not in (0, None) and not suite.count(FAILED) + suite.count(ERROR):
        lines += _diagnostics(f"pytest exited {suite.pytest_rc} with no test failed", INDENT)
    lines.append(f"# {_description(suite.name)}: {_counts(*_suite_counts(suite))}")
    lines.append(f"{'ok' if suite.ok else 'not ok'} {number} {_description(suite.name)}")
    return lines


def render(run: LoadedRun) -> str:
    lines = ["KTAP version 1", f"1..{len(run.suites)}"]
    for number, suite in enumerate(run.suites, start=1):
        lines += _suite_lines(number, suite)
    totals = [sum(counts) for counts in zip(*(_suite_counts(s) for s in run.suites))] or [0, 0, 0]
    lines.append(f"# Totals: {_counts(*totals)}")
    kernel = run.metadata.get("kernel")
    lines.append(f"# kernel: {kernelident.describe(kernel) if isinstance(kernel, dict) else 'not recorded'}")
    lines.append(f"# lab run {run.run_id}: outcome {run.outcome or 'none (the run did not finish)'}"
                 + (f" ({run.reason})" if run.reason else ""))
    return "\n".join(lines) + "\n"
