"""pytest plugin: one line per test as it starts and ends, on the terminal (streamed to the host).

JUnit XML is written only when pytest finishes. If the guest dies mid-suite (a panic, a
lost connection), these lines, already on the host, keep the finished tests' results and
name the test that was running.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import pytest

PREFIX = "@@lab-test "
_outcomes: dict[str, dict[str, Any]] = {}
# Called with each finished test's final state (nodeid, outcome, duration, message); other
# reporters (lavasignals) add themselves here rather than work the outcome out again.
FINISH_LISTENERS: list[Callable[[dict[str, Any]], None]] = []


def _emit(config: pytest.Config, event: dict[str, Any]) -> None:
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(PREFIX + json.dumps(event, sort_keys=True), flush=True)


def pytest_collection_finish(session: pytest.Session) -> None:
    # How many tests there are to run: the host shows "<done> of <collected>" on a terminal.
    _emit(session.config, {"event": "collected", "count": len(session.items)})


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _outcomes[nodeid] = {"event": "end", "nodeid": nodeid, "outcome": "passed", "duration": 0.0, "message": ""}
    _emit(_config, {"event": "start", "nodeid": nodeid})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    state = _outcomes.setdefault(report.nodeid, {"event": "end", "nodeid": report.nodeid, "outcome": "passed",
                                                 "duration": 0.0, "message": ""})
    state["duration"] += report.duration
    # What the test recorded about the kernel (record_property), as JUnit would carry it: text.
    if report.user_properties:
        state["properties"] = {str(name): str(value) for name, value in report.user_properties}
    if report.skipped and state["outcome"] == "passed":
        state["outcome"] = "skipped"
        longrepr = report.longrepr
        state["message"] = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    elif report.failed:
        # A failure outside the test body (fixture setup/teardown) is an error, as in JUnit.
        state["outcome"] = "failed" if report.when == "call" else "error"
        # pytest's one-line account of the crash ("AssertionError: ..."), else the report's last line.
        crash = getattr(report.longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(report.longrepr or "").strip()
        state["message"] = (text.splitlines() or [""])[0 if crash is not None else -1][:500]


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    state = _outcomes.pop(nodeid, None)
    if state is not None:
        state["duration"] = round(state["duration"], 3)
        _emit(_config, state)
        for listener in FINISH_LISTENERS:
            listener(state)


_config: pytest.Config


def pytest_configure(config: pytest.Config) -> None:
    global _config
    _config = config
