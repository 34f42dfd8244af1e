"""JUnit XML both ways: the guest's pytest reports read into typed records, and junit.xml, every
suite of a run in one <testsuites> document, for CI systems that read one file.

Each suite's own testsuite element (as the guest's pytest wrote it in junit-<suite>.xml) is kept
and named after the suite; pytest names them all "pytest". A suite the guest did not finish
(timed out, connection lost) has no junit-<suite>.xml: its testsuite is rebuilt from the records
streamed while it ran, so junit.xml never says less than results.json.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from . import layout
from .model import ERROR, FAILED, PASSED, SKIPPED, SuiteResult, TestRecord

MERGED_NAME = layout.JUNIT
COUNTS = ("tests", "failures", "errors", "skipped")


def _test_name(case: ET.Element) -> str:
    classname = case.get("classname", "")
    name = case.get("name", "")
    # pytest writes classname as dotted module[.Class]: "suites.test_maps.TestHash".
    parts = classname.split(".")
    module_index = next((i for i, part in enumerate(parts) if part.startswith("test_")), len(parts) - 1)
    module = parts[module_index] + ".py" if parts and parts[0] else ""
    scope = "::".join([module, *parts[module_index + 1 :], name]) if module else name
    return scope


def parse_junit(xml_text: str, suite: str) -> list[TestRecord]:
    root = ET.fromstring(xml_text)
    records = []
    for case in root.iter("testcase"):
        outcome, message, skip_reason = PASSED, "", ""
        for child in case:
            if child.tag == "failure":
                outcome, message = FAILED, child.get("message") or (child.text or "").strip()[:2000]
            elif child.tag == "error":
                outcome, message = ERROR, child.get("message") or (child.text or "").strip()[:2000]
            elif child.tag == "skipped":
                outcome = SKIPPED
                skip_reason = child.get("message") or (child.text or "").strip()
        properties = {prop.get("name", ""): prop.get("value", "") for prop in case.iter("property")}
        records.append(TestRecord(suite, _test_name(case), outcome, float(case.get("time") or 0.0),
                                  message, skip_reason, properties))
    return records


def parse_suite_properties(xml_text: str) -> dict[str, str]:
    """Properties recorded for the whole suite (pytest's record_testsuite_property)."""
    root = ET.fromstring(xml_text)
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    found: dict[str, str] = {}
    for suite in suites:
        block = suite.find("properties")
        if block is not None:
            found.update({prop.get("name", ""): prop.get("value", "") for prop in block.iter("property")})
    return found



def _from_file(path: Path) -> list[ET.Element] | None:
    """The testsuite elements of a pytest report, or None if it is missing or unreadable."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    return [root] if root.tag == "testsuite" else list(root.iter("testsuite"))


def _testcase(record: TestRecord) -> ET.Element:
    # results.json names a test "test_a.py::Class::test_b[x]"; JUnit splits it into classname and name.
    *scope, name = record.name.split("::")
    classname = ".".join([scope[0].removesuffix(".py"), *scope[1:]]) if scope else record.suite
    case = ET.Element("testcase", classname=classname, name=name, time=f"{record.duration:.3f}")
    if record.properties:
        block = ET.SubElement(case, "properties")
        for key, value in record.properties.items():
            ET.SubElement(block, "property", name=key, value=value)
    if record.outcome == FAILED:
        ET.SubElement(case, "failure", message=record.message)
    elif record.outcome == ERROR:
        ET.SubElement(case, "error", message=record.message)
    elif record.outcome == SKIPPED:
        ET.SubElement(case, "skipped", message=record.skip_reason)
    return case


def _from_records(suite: SuiteResult) -> ET.Element:
    element = ET.Element("testsuite", name=suite.name, tests=str(len(suite.records)),
                         failures=str(suite.count(FAILED)), errors=str(suite.count(ERROR)),
                         skipped=str(suite.count(SKIPPED)), time=f"{suite.wall_seconds:.3f}")
    properties = {**suite.properties, **({"lab.suite_error": suite.error} if suite.error else {})}
    if properties:
        block = ET.SubElement(element, "properties")
        for key, value in properties.items():
            ET.SubElement(block, "property", name=key, value=value)
    element.extend(_testcase(record) for record in suite.records)
    return element


def _count(element: ET.Element, attribute: str) -> int:
    try:
        return int(element.get(attribute) or 0)
    except ValueError:
        return 0


def _seconds(element: ET.Element) -> float:
    try:
        return float(element.get("time") or 0.0)
    except ValueError:
        return 0.0


def merge(run_dir: Path, suites: list[SuiteResult]) -> ET.Element:
    """One <testsuites> root: each suite's testsuite in run order, totals summed on the root."""
    root = ET.Element("testsuites", name="bpf-kernel-lab")
    for suite in suites:
        elements = _from_file(layout.suite_junit(run_dir, suite.name)) or [_from_records(suite)]
        for element in elements:
            element.set("name", suite.name)
            root.append(element)
    for attribute in COUNTS:
        root.set(attribute, str(sum(_count(element, attribute) for element in root)))
    root.set("time", f"{sum(_seconds(element) for element in root):.3f}")
    return root


def write_merged(run_dir: Path, suites: list[SuiteResult]) -> Path:
    path = run_dir / MERGED_NAME
    tmp = path.with_suffix(".xml.tmp")
    ET.ElementTree(merge(run_dir, suites)).write(tmp, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, path)  # a CI job reading it mid-run never sees half a file
    return path
