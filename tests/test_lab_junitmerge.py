"""lab.junitmerge: every suite's JUnit in one junit.xml, named per suite, totals on the root."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from test_lab_results import sample_run  # noqa: F401  (a real pytest run's xunit1 report)

from lab.results import junit
from lab.core.outcome import Outcome, Verdict
from lab.results.junit import parse_junit
from lab.results.model import ERROR, FAILED, PASSED, SKIPPED, SuiteResult
from lab.results.model import TestRecord as Record
from lab.results.record import RunRecord

REQUEST = {"kernel": "debian:6.1", "suites": ["maps", "dump", "pin"], "accel": "auto"}


def pytest_report(tests: int, failures: int = 0, skipped: int = 0, time: str = "1.500") -> str:
    """What the guest's pytest writes: <testsuites><testsuite name="pytest" ...>."""
    cases = "".join(f'<testcase classname="suites.x.test_x" name="t{i}" time="0.1" />' for i in range(tests - failures - skipped))
    cases += "".join(f'<testcase classname="suites.x.test_x" name="f{i}" time="0.1"><failure message="boom" /></testcase>'
                     for i in range(failures))
    cases += "".join(f'<testcase classname="suites.x.test_x" name="s{i}" time="0"><skipped message="no" /></testcase>'
                     for i in range(skipped))
    return (f'<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" '
            f'failures="{failures}" skipped="{skipped}" tests="{tests}" time="{time}">{cases}</testsuite></testsuites>')


def suite(name: str, wall: float = 1.0) -> SuiteResult:
    return SuiteResult(name, [Record(name, f"test_{name}.py::t", PASSED, 0.1)], wall, 0)


def test_each_suite_keeps_its_testsuite_named_after_it_and_the_root_sums_them(tmp_path: Path) -> None:
    (tmp_path / "junit-maps.xml").write_text(pytest_report(10, failures=2, skipped=1, time="3.250"))
    (tmp_path / "junit-pin.xml").write_text(pytest_report(4, time="0.750"))
    root = junit.merge(tmp_path, [suite("maps"), suite("pin")])
    assert root.tag == "testsuites"
    assert [s.get("name") for s in root] == ["maps", "pin"]
    assert [len(s.findall("testcase")) for s in root] == [10, 4]  # the cases themselves, not only counts
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("14", "2", "0", "1")
    assert float(root.get("time") or 0) == 4.0


def test_run_order_not_file_order(tmp_path: Path) -> None:
    for name in ("dump", "maps"):
        (tmp_path / f"junit-{name}.xml").write_text(pytest_report(1))
    assert [s.get("name") for s in junit.merge(tmp_path, [suite("maps"), suite("dump")])] == ["maps", "dump"]


def test_a_suite_without_a_report_is_rebuilt_from_its_records(tmp_path: Path) -> None:
    records = [
        Record("dump", "test_dump.py::test_ok", PASSED, 0.25, properties={"errno": "EBUSY"}),
        Record("dump", "test_dump.py::TestBatch::test_slow[4]", ERROR, 0.0, "timed out: pytest did not finish"),
        Record("dump", "test_dump.py::test_bad", FAILED, 0.5, "assert 1 == 2"),
        Record("dump", "test_dump.py::test_skip", SKIPPED, 0.0, skip_reason="no BPF_MAP_DUMP"),
    ]
    timed_out = SuiteResult("dump", records, 600.0, None, "timed out: pytest did not finish")
    root = junit.merge(tmp_path, [timed_out])
    [element] = list(root)
    assert element.get("name") == "dump"
    assert (element.get("tests"), element.get("failures"), element.get("errors"), element.get("skipped")) == ("4", "1", "1", "1")
    assert root.get("tests") == "4" and root.get("errors") == "1"
    properties = {p.get("name"): p.get("value") for p in element.findall("properties/property")}
    assert properties == {"lab.suite_error": "timed out: pytest did not finish"}
    # What was rebuilt reads back as the same records: junit.xml says what results.json says.
    assert parse_junit(ET.tostring(element, encoding="unicode"), "dump") == records


def test_a_corrupt_report_falls_back_to_the_records(tmp_path: Path) -> None:
    (tmp_path / "junit-pin.xml").write_text("<testsuites><testsuite name=")  # cut off when the guest died
    root = junit.merge(tmp_path, [suite("pin")])
    assert [(s.get("name"), s.get("tests")) for s in root] == [("pin", "1")]


def test_a_real_pytest_report_merges_with_its_counts(tmp_path: Path, sample_run: tuple[str, int]) -> None:  # noqa: F811
    xml_text, _ = sample_run
    (tmp_path / "junit-maps.xml").write_text(xml_text)
    records = parse_junit(xml_text, "maps")
    root = junit.merge(tmp_path, [SuiteResult("maps", records, 2.0, 1)])
    assert root.get("tests") == str(len(records)) == "8"
    assert root.get("failures") == str(sum(r.outcome == FAILED for r in records))
    assert root.get("errors") == str(sum(r.outcome == ERROR for r in records))
    assert root.get("skipped") == str(sum(r.outcome == SKIPPED for r in records))
    assert parse_junit(ET.tostring(root, encoding="unicode"), "maps") == records


def test_the_run_record_writes_junit_xml_after_each_suite(tmp_path: Path) -> None:
    record = RunRecord.create(tmp_path / "results", "6.1.0-fake", REQUEST)
    merged = record.directory / "junit.xml"
    assert not merged.exists()  # no suite yet
    (record.directory / "junit-maps.xml").write_text(pytest_report(3))
    record.add_suite(suite("maps"))
    assert [s.get("name") for s in ET.parse(merged).getroot()] == ["maps"]  # a run cut short here has it
    record.add_suite(SuiteResult("dump", [], 5.0, None, "lost connection: the SSH connection broke"))
    root = ET.parse(merged).getroot()
    assert [s.get("name") for s in root] == ["maps", "dump"] and root.get("tests") == "3"
    record.finish(Verdict(Outcome.LOST_CONNECTION, "lost"))
    assert not list(record.directory.glob("*.tmp"))
