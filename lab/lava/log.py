"""Read lava-run's log: LAVA's results, the console it saw, and the lab's test records in it.

lava-run prints one YAML mapping per line: {"dt", "lvl", "msg"}. Per-case results exist only
as "lvl": "results" lines (lava-run exits 0 when cases fail); "target" lines are the serial
console, with LAVA's own edits: carriage returns and escape characters dropped, and every
double quote written as \\" for YAML's sake. Each test definition's console lies between
<LAVA_SIGNAL_STARTRUN name uuid> and <LAVA_SIGNAL_ENDRUN ...>.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import yaml

from ..core.paths import GUEST_TESTS_DIR
from ..results import stream
from ..results.model import ERROR, FAILED, PASSED, SKIPPED, SuiteResult, TestRecord
from ..run import suites as runner

_STARTRUN = re.compile(r"<LAVA_SIGNAL_STARTRUN (\S+) \S+>")
_ENDRUN = re.compile(r"<LAVA_SIGNAL_ENDRUN (\S+) \S+>")
_DEFINITION_INDEX = re.compile(r"^\d+_")
LAVA_OUTCOME = {"pass": PASSED, "skip": SKIPPED, "fail": FAILED}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_lavacase() -> ModuleType:
    # One definition of LAVA's case names, shared with the guest (guest-tests is not a package).
    spec = importlib.util.spec_from_file_location("lavacase", GUEST_TESTS_DIR / "lavacase.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lavacase = _load_lavacase()


@dataclass
class LavaLog:
    results: list[dict[str, Any]] = field(default_factory=list)  # LAVA's own form, in order
    console: list[str] = field(default_factory=list)  # the serial console, LAVA's edits undone
    definition_console: dict[str, list[str]] = field(default_factory=dict)  # "0_maps" -> its lines
    errors: list[str] = field(default_factory=list)  # "lvl": "error" and "exception" messages

    def lava_results(self, definition: str = "lava") -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("definition") == definition]

    @property
    def job_result(self) -> dict[str, Any] | None:
        """LAVA's verdict on the job itself: result pass/fail, and error_type/error_msg on failure."""
        found = [r for r in self.lava_results() if r.get("case") == "job"]
        return found[-1] if found else None

    @property
    def booted(self) -> bool:
        """LAVA logged in: its login action (the boot up to the job's prompt) passed."""
        return any(r.get("case") == "login-action" and r.get("result") == "pass" for r in self.lava_results())

    def cases(self, definition: str) -> dict[str, dict[str, Any]]:
        return {str(r.get("case")): r for r in self.results if r.get("definition") == definition}

    def definitions(self) -> list[str]:
        """The test definitions that reported, in order: "0_maps", "1_dump", ..."""
        seen = dict.fromkeys(str(r.get("definition")) for r in self.results)
        seen.update(dict.fromkeys(self.definition_console))
        return [name for name in seen if name != "lava"]


def parse(text: str) -> LavaLog:
    log = LavaLog()
    current: str | None = None
    for raw in text.splitlines():
        if not raw.startswith("{"):
            continue
        try:
            entry = yaml.load(raw, Loader=_Loader)
        except yaml.YAMLError:
            continue  # a line cut off when lava-run was killed
        if not isinstance(entry, dict):
            continue
        level, message = entry.get("lvl"), entry.get("msg")
        if level == "results" and isinstance(message, dict):
            log.results.append(message)
        elif level in ("error", "exception"):
            log.errors.append(str(message))
        elif level in ("target", "feedback"):
            line = str(message).replace('\\"', '"')
            log.console.append(line)
            started = _STARTRUN.search(line)
            if started:
                current = started[1]
                log.definition_console.setdefault(current, [])
            if current is not None:
                log.definition_console[current].append(line)
            if _ENDRUN.search(line):
                current = None
    return log


def suite_name(definition: str) -> str:
    """LAVA names a test definition's results "<index>_<name>": 0_maps -> maps."""
    return _DEFINITION_INDEX.sub("", definition, count=1)


def _why_unfinished(log: LavaLog) -> str:
    job = log.job_result or {}
    return f"LAVA: {job.get('error_type', 'job')} error: {job.get('error_msg', 'the test shell ended under it')}"


def suite_result(log: LavaLog, definition: str) -> SuiteResult:
    """One suite from LAVA's case results, with names, messages and durations from the lab's
    own per-test lines on the console where they survived. Where LAVA and the test disagree,
    or LAVA has no result for a test that finished, the test is an error; a case LAVA
    reported with no line of the lab's keeps LAVA's case name."""
    suite = suite_name(definition)
    why = _why_unfinished(log)
    streamed = stream.records_from_stream("\n".join(log.definition_console.get(definition, [])), suite, why)
    cases = log.cases(definition)
    exit_case = cases.pop(lavacase.PYTEST_EXIT_CASE, None)
    records: list[TestRecord] = []
    for record in streamed:
        case = cases.pop(lavacase.case_id(f"{runner.SUITES.get(suite, suite)}/{record.name}"), None)
        lava_outcome = LAVA_OUTCOME.get(str(case.get("result")), ERROR) if case else None
        if case is not None and lava_outcome is not None and record.outcome == ERROR and record.message == why:
            # Its end line was lost on the console (kernel output inside it), LAVA's result was not.
            record = TestRecord(suite, record.name, lava_outcome, float(case.get("measurement") or 0.0))
        elif lava_outcome is None and record.outcome != ERROR:
            record = TestRecord(suite, record.name, ERROR, record.duration, "LAVA recorded no result for this test")
        elif lava_outcome not in (None, record.outcome) and (lava_outcome, record.outcome) != (FAILED, ERROR):
            record = TestRecord(suite, record.name, ERROR, record.duration,
                                f"LAVA recorded {case and case.get('result')}, the test reported {record.outcome}")
        records.append(record)
    # Cases whose console line was lost (kernel output in the middle of it): LAVA's word only.
    records += [TestRecord(suite, name, LAVA_OUTCOME.get(str(case.get("result")), ERROR),
                           float(case.get("measurement") or 0.0)) for name, case in cases.items()]
    run_summary = next((r for r in log.lava_results() if r.get("case") == definition), None)
    wall = float(run_summary.get("duration", 0.0)) if run_summary else 0.0
    pytest_rc = int(float(exit_case["measurement"])) if exit_case and exit_case.get("measurement") is not None else None
    error = "" if exit_case else f"the suite did not finish under LAVA ({why})"
    return SuiteResult(suite, records, wall, pytest_rc, error)
