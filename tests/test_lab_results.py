"""lab.results: JUnit XML from a real pytest run (xunit1, as the runner asks for) into records."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lab.results import junit as results
from lab.results.junit import parse_junit
from lab.results.model import ERROR, FAILED, PASSED, SKIPPED, SuiteResult

SAMPLE = '''\
import pytest


@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")


def test_pass(record_property):
    record_property("max_entries", 4096)
    record_property("note", "a<b & c")
    assert 1 + 1 == 2


def test_fail():
    assert 2 + 2 == 5, "arithmetic is broken"


def test_error(broken):
    pass


def test_skip():
    pytest.skip("needs CONFIG_BPF_LSM")


@pytest.mark.skipif(True, reason="kernel too old for batch ops")
def test_skipif():
    pass


class TestGroup:
    def test_in_class(self, record_property):
        record_property("kernel_behaviour", "EINVAL")


@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    assert n
'''

CONFTEST = '''\
import pytest


@pytest.fixture(scope="session", autouse=True)
def _facts(record_testsuite_property):
    record_testsuite_property("kernel_release", "6.1.0-fake")
'''


def run_pytest(root: Path, test_file: str, junit: Path) -> int:
    """Like the runner does it in the guest: rootdir with its own ini, xunit1, no cache."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", f"--junitxml={junit}",
         "-o", "junit_family=xunit1", test_file],
        cwd=root, capture_output=True, text=True, check=False,
    )
    assert junit.is_file(), done.stdout + done.stderr
    return done.returncode


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    root = tmp_path_factory.mktemp("guest-tests")
    (root / "pytest.ini").write_text("[pytest]\njunit_family = xunit1\n")
    (root / "suites").mkdir()
    (root / "suites" / "test_sample.py").write_text(SAMPLE)
    (root / "conftest.py").write_text(CONFTEST)
    junit = root / "out.xml"
    rc = run_pytest(root, "suites/test_sample.py", junit)
    return junit.read_text(), rc


@pytest.fixture(scope="module")
def records(sample_run: tuple[str, int]) -> dict[str, results.TestRecord]:
    parsed = parse_junit(sample_run[0], "sample")
    by_name = {r.name: r for r in parsed}
    assert len(by_name) == len(parsed), "two records share a name"
    return by_name


def test_names_are_node_ids_within_the_suite_file(records: dict[str, results.TestRecord]) -> None:
    assert set(records) == {
        "test_sample.py::test_pass",
        "test_sample.py::test_fail",
        "test_sample.py::test_error",
        "test_sample.py::test_skip",
        "test_sample.py::test_skipif",
        "test_sample.py::TestGroup::test_in_class",
        "test_sample.py::test_param[1]",
        "test_sample.py::test_param[2]",
    }
    assert all(r.suite == "sample" for r in records.values())


def test_outcomes(records: dict[str, results.TestRecord]) -> None:
    outcomes = {name.split("::", 1)[1]: r.outcome for name, r in records.items()}
    assert outcomes == {
        "test_pass": PASSED,
        "test_fail": FAILED,
        "test_error": ERROR,
        "test_skip": SKIPPED,
        "test_skipif": SKIPPED,
        "TestGroup::test_in_class": PASSED,
        "test_param[1]": PASSED,
        "test_param[2]": PASSED,
    }


def test_messages(records: dict[str, results.TestRecord]) -> None:
    assert "arithmetic is broken" in records["test_sample.py::test_fail"].message
    assert "fixture exploded" in records["test_sample.py::test_error"].message
    assert records["test_sample.py::test_pass"].message == ""
    assert records["test_sample.py::test_pass"].skip_reason == ""


def test_skip_reasons(records: dict[str, results.TestRecord]) -> None:
    assert records["test_sample.py::test_skip"].skip_reason == "needs CONFIG_BPF_LSM"
    assert records["test_sample.py::test_skipif"].skip_reason == "kernel too old for batch ops"


def test_properties(records: dict[str, results.TestRecord]) -> None:
    assert records["test_sample.py::test_pass"].properties == {"max_entries": "4096", "note": "a<b & c"}
    assert records["test_sample.py::TestGroup::test_in_class"].properties == {"kernel_behaviour": "EINVAL"}
    # Suite-level properties (record_testsuite_property) belong to no test.
    assert all("kernel_release" not in r.properties for r in records.values())
    assert records["test_sample.py::test_fail"].properties == {}


def test_durations(records: dict[str, results.TestRecord]) -> None:
    assert all(isinstance(r.duration, float) and r.duration >= 0 for r in records.values())


def test_records_serialise(records: dict[str, results.TestRecord]) -> None:
    data = records["test_sample.py::test_pass"].to_json()
    assert data["name"] == "test_sample.py::test_pass" and data["outcome"] == PASSED
    assert data["properties"] == {"max_entries": "4096", "note": "a<b & c"}


def test_suite_result_counts(sample_run: tuple[str, int], records: dict[str, results.TestRecord]) -> None:
    result = SuiteResult("sample", list(records.values()), 2.345, sample_run[1])
    assert sample_run[1] == 1  # pytest: tests failed
    assert (result.count(PASSED), result.count(FAILED), result.count(SKIPPED), result.count(ERROR)) == (4, 1, 2, 1)
    assert not result.ok
    assert result.summary() == {"suite": "sample", "passed": 4, "failed": 1, "skipped": 2, "errors": 1,
                                "wall_seconds": 2.35, "pytest_rc": 1, "error": "", "properties": {}}


def test_suite_properties(sample_run: tuple[str, int]) -> None:
    properties = results.parse_suite_properties(sample_run[0])
    assert properties == {"kernel_release": "6.1.0-fake"}
    result = SuiteResult("sample", [], 1.0, 1, properties=properties)
    assert result.summary()["properties"] == {"kernel_release": "6.1.0-fake"}


def test_suite_properties_of_a_bare_testsuite_and_of_none() -> None:
    bare = ('<testsuite name="pytest"><properties><property name="probe.bloom" value="supported"/></properties>'
            '<testcase classname="suites.test_maps" name="t"><properties><property name="x" value="1"/>'
            '</properties></testcase></testsuite>')
    assert results.parse_suite_properties(bare) == {"probe.bloom": "supported"}  # not the testcase's
    assert results.parse_suite_properties("<testsuites><testsuite/></testsuites>") == {}


def test_a_green_run_is_ok(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_green.py").write_text(
        "import pytest\n\ndef test_a():\n    pass\n\ndef test_b():\n    pytest.skip('not here')\n")
    junit = tmp_path / "out.xml"
    rc = run_pytest(tmp_path, "test_green.py", junit)
    result = SuiteResult("green", parse_junit(junit.read_text(), "green"), 0.5, rc)
    assert rc == 0
    assert result.ok
    assert [r.name for r in result.records] == ["test_green.py::test_a", "test_green.py::test_b"]


def test_a_collection_error_is_an_error_record(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "test_broken.py").write_text("import no_such_module_here\n\ndef test_x():\n    pass\n")
    junit = tmp_path / "out.xml"
    rc = run_pytest(tmp_path, "suites/test_broken.py", junit)
    records = parse_junit(junit.read_text(), "broken")
    assert [r.outcome for r in records] == [ERROR]
    assert "no_such_module_here" in records[0].message or "collection failure" in records[0].message
    result = SuiteResult("broken", records, 0.1, rc)
    assert rc != 0 and not result.ok


def test_ok_needs_a_zero_exit_and_no_error() -> None:
    passed = [results.TestRecord("s", "test_s.py::t", PASSED, 0.1)]
    assert SuiteResult("s", passed, 1.0, 0).ok
    assert not SuiteResult("s", passed, 1.0, 1).ok  # e.g. an internal pytest error after the tests
    assert not SuiteResult("s", [], 1.0, 5).ok  # nothing collected
    assert not SuiteResult("s", passed, 1.0, None, "timed out: ...").ok
    assert not SuiteResult("s", passed, 1.0, 0, "pytest wrote no report").ok


@pytest.mark.parametrize("classname, name, expected", [
    ("suites.test_maps", "test_update", "test_maps.py::test_update"),
    ("suites.test_maps.TestHash", "test_update", "test_maps.py::TestHash::test_update"),
    ("test_pin", "test_pin_get[rdonly]", "test_pin.py::test_pin_get[rdonly]"),
    ("", "suites.test_broken", "suites.test_broken"),
])
def test_test_name(classname: str, name: str, expected: str) -> None:
    xml = f'<testsuites><testsuite><testcase classname="{classname}" name="{name}" time="0.1"/></testsuite></testsuites>'
    assert [r.name for r in parse_junit(xml, "s")] == [expected]


def test_failure_text_is_used_when_there_is_no_message() -> None:
    xml = textwrap.dedent("""\
        <testsuite>
          <testcase classname="suites.test_maps" name="test_a" time="">
            <failure>  Traceback: something  </failure>
          </testcase>
          <testcase classname="suites.test_maps" name="test_b">
            <skipped>reason in the text</skipped>
          </testcase>
        </testsuite>""")
    first, second = parse_junit(xml, "maps")
    assert (first.outcome, first.message, first.duration) == (FAILED, "Traceback: something", 0.0)
    assert (second.outcome, second.skip_reason) == (SKIPPED, "reason in the text")
