"""Results streamed while a suite runs: guest-tests/labstream.py prints a line as each test
starts and ends, so a suite the guest never finished still has the results of the tests that did."""
from __future__ import annotations

import json
from pathlib import Path

from ..core.progress import LineCounter
from .model import ERROR, TestRecord

STREAM_PREFIX = "@@lab-test "  # guest-tests/labstream.py writes these lines
END_EVENT = '"event": "end"'  # in the line of a finished test (labstream sorts its keys)


def _short_name(nodeid: str) -> str:
    """suites/maps/test_a.py::test_b[x/y] -> test_a.py::test_b[x/y], as in the JUnit records."""
    path, sep, rest = nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


def records_from_stream(log_text: str, suite: str, why_unfinished: str) -> list[TestRecord]:
    """Results of the tests that finished, from labstream's lines; a started test that never
    finished is an error carrying why (the guest died or the suite timed out under it)."""
    finished: dict[str, TestRecord] = {}
    running: list[str] = []
    for line in log_text.splitlines():
        # pytest -q may have put progress dots before it on the same line.
        at = line.find(STREAM_PREFIX)
        if at < 0:
            continue
        try:
            event = json.loads(line[at + len(STREAM_PREFIX):])
        except ValueError:
            continue  # a line cut off when the guest died
        nodeid = str(event.get("nodeid", ""))
        if event.get("event") == "start":
            running.append(nodeid)
        elif event.get("event") == "end":
            if nodeid in running:
                running.remove(nodeid)
            message = str(event.get("message", ""))
            outcome = str(event.get("outcome", ERROR))
            properties = event.get("properties") or {}
            finished[nodeid] = TestRecord(suite, _short_name(nodeid), outcome, float(event.get("duration", 0.0)),
                                          "" if outcome == "skipped" else message,
                                          message if outcome == "skipped" else "",
                                          {str(k): str(v) for k, v in properties.items()})
    unfinished = [TestRecord(suite, _short_name(nodeid), ERROR, 0.0, why_unfinished) for nodeid in running]
    return [*finished.values(), *unfinished]


def collected_count(line: str) -> int | None:
    """The number of tests a suite collected, from labstream's "collected" line (else None)."""
    at = line.find(STREAM_PREFIX)
    if at < 0 or '"collected"' not in line:
        return None
    try:
        event = json.loads(line[at + len(STREAM_PREFIX):])
    except ValueError:
        return None
    return int(event["count"]) if event.get("event") == "collected" and isinstance(event.get("count"), int) else None


def is_end_line(line: str) -> bool:
    return STREAM_PREFIX in line and END_EVENT in line


class SuiteProgress:
    """`<done> of <collected> tests` from a suite's streamed log as it grows (a progress poll)."""

    def __init__(self, log: Path) -> None:
        self.collected: int | None = None
        self.done = 0
        self._counter = LineCounter(log, self._seen)

    def _seen(self, line: str) -> bool:
        if self.collected is None:
            self.collected = collected_count(line)
        return is_end_line(line)

    def __call__(self) -> str | None:
        self.done = self._counter()
        return f"{self.done} of {self.collected} tests" if self.collected else (f"{self.done} tests" if self.done else None)
