"""pytest plugin for runs under LAVA's test shell: every finished test becomes a LAVA test case.

Loaded with `-p labstream -p lavasignals` by lava-run-suite.sh. It reports through LAVA's
own `lava-test-case` helper (on PATH inside lava-test-runner), which records the result in
LAVA's results directory and prints the <LAVA_SIGNAL_TESTCASE ...> line the dispatcher reads.
The duration goes with it as the case's measurement, in seconds.
"""
from __future__ import annotations

import subprocess
from typing import Any

import pytest

import labstream
from lavacase import LAVA_RESULT, case_id


def _report(state: dict[str, Any]) -> None:
    result = LAVA_RESULT.get(str(state.get("outcome")), "fail")
    subprocess.run(["lava-test-case", case_id(str(state["nodeid"])), "--result", result,
                    "--measurement", f"{float(state.get('duration', 0.0)):.3f}", "--units", "seconds"],
                   check=False)


def pytest_configure(config: pytest.Config) -> None:
    labstream.FINISH_LISTENERS.append(_report)
