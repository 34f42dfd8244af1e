"""Test results as typed records: one per test, and a suite's records with its counts."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

PASSED, FAILED, SKIPPED, ERROR = "passed", "failed", "skipped", "error"

# An outcome class: failed and error both mean the kernel did not do what the test expects.
PASS, FAIL, SKIP = "pass", "fail", "skip"
CLASS_OF = {PASSED: PASS, FAILED: FAIL, ERROR: FAIL, SKIPPED: SKIP}


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

    @property
    def outcome_class(self) -> str:
        return CLASS_OF[self.outcome]


@dataclass
class SuiteResult:
    name: str
    records: list[TestRecord]
    wall_seconds: float
    pytest_rc: int | None = None
    error: str = ""  # why the suite did not finish, if it did not
    properties: dict[str, str] = field(default_factory=dict)  # suite-wide facts (probed features)
    lost: bool = False  # the connection to the target broke during this suite
    warning: str = ""  # what weakens the result without failing it (output past the lab's cap)

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
