"""Test results: JUnit XML from the guest's pytest into typed records, and per-suite counts."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field

PASSED, FAILED, SKIPPED, ERROR = "passed", "failed", "skipped", "error"


@dataclass(frozen=True)
class TestRecord:
    suite: str
    name: str  # pytest's node id within the suite file, e.g. test_map_basics.py::test_update_noexist
    outcome: str  # passed | failed | skipped | error
    duration: float
    message: str = ""
    skip_reason: str = ""
    properties: dict[str, str] = field(default_factory=dict)  # kernel behaviour the test noted

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class SuiteResult:
    name: str
    records: list[TestRecord]
    wall_seconds: float
    pytest_rc: int | None = None
    error: str = ""  # why the suite did not finish, if it did not
    properties: dict[str, str] = field(default_factory=dict)  # suite-wide facts (probed features)
    lost: bool = False  # the connection to the target broke during this suite

    def count(self, outcome: str) -> int:
        return sum(1 for record in self.records if record.outcome == outcome)

    @property
    def ok(self) -> bool:
        # pytest exits 0 only when every collected test passed or skipped.
        return not self.error and self.pytest_rc == 0 and self.count(FAILED) == 0 and self.count(ERROR) == 0

    def summary(self) -> dict[str, object]:
        return {
            "suite": self.name,
            "passed": self.count(PASSED),
            "failed": self.count(FAILED),
            "skipped": self.count(SKIPPED),
            "errors": self.count(ERROR),
            "wall_seconds": round(self.wall_seconds, 2),
            "pytest_rc": self.pytest_rc,
            "error": self.error,
            "properties": self.properties,
        }


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
