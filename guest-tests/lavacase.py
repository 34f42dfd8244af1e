"""LAVA test case names for pytest node ids. Standard library only: the lab imports this file
on the host too, to match LAVA's results back to the tests (lab/lava/log.py)."""
from __future__ import annotations

import hashlib
import re

# LAVA keeps a test case name in a 100-character field and drops names with whitespace.
MAX_CASE_ID = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
LAVA_RESULT = {"passed": "pass", "skipped": "skip", "failed": "fail", "error": "fail"}
# pytest's own exit status, one more case per suite (guest-tests/lava-run-suite.sh)
PYTEST_EXIT_CASE = "pytest-exit"


def case_id(nodeid: str) -> str:
    """suites/maps/test_a.py::test_b[hash-4] -> test_a.test_b_hash-4: LAVA's characters only,
    at most MAX_CASE_ID of them (a long name keeps a hash of the whole so it stays unique)."""
    path, _, name = nodeid.partition("::")
    module = path.rsplit("/", 1)[-1].removesuffix(".py")
    text = _UNSAFE.sub("_", f"{module}.{name}" if name else module).strip("_")
    if len(text) > MAX_CASE_ID:
        digest = hashlib.sha1(nodeid.encode()).hexdigest()[:8]
        text = text[: MAX_CASE_ID - 9] + "-" + digest
    return text
