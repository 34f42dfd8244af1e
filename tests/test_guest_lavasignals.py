"""The guest side of LAVA runs: case names, and the pytest plugin that reports each test
through LAVA's lava-test-case (a stand-in on PATH records its calls here)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.core.paths import GUEST_TESTS_DIR

sys.path.insert(0, str(GUEST_TESTS_DIR))
import lavacase  # noqa: E402  (guest-tests is not a package)


@pytest.mark.parametrize("nodeid, expected", [
    ("suites/maps/test_a.py::test_b", "test_a.test_b"),
    ("suites/maps/test_a.py::test_b[hash-4]", "test_a.test_b_hash-4"),
    ("suites/pin/test_p.py::TestX::test_y[a/b c]", "test_p.TestX_test_y_a_b_c"),
    ("suites/dump/test_d.py", "test_d"),
])
def test_case_ids_use_only_lavas_characters(nodeid: str, expected: str) -> None:
    assert lavacase.case_id(nodeid) == expected


def test_long_names_are_cut_but_stay_unique() -> None:
    base = "suites/maps/test_a.py::test_" + "x" * 120
    first, second = lavacase.case_id(base + "[1]"), lavacase.case_id(base + "[2]")
    assert len(first) == len(second) == lavacase.MAX_CASE_ID
    assert first != second and first.startswith("test_a.test_xxx")


FAKE_HELPER = """#!/bin/sh
echo "$*" >> "$LAVA_CALLS"
"""

SUITE = """import pytest


def test_ok():
    pass


def test_bad():
    assert False


def test_skip():
    pytest.skip("too old")


@pytest.fixture
def broken():
    raise RuntimeError("setup")


def test_error(broken):
    pass
"""


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    (tree / "suites" / "pin").mkdir(parents=True)
    for name in ("labstream.py", "lavasignals.py", "lavacase.py", "pytest.ini", "lava-run-suite.sh"):
        shutil.copy(GUEST_TESTS_DIR / name, tree / name)
    (tree / "suites" / "pin" / "test_fake.py").write_text(SUITE)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "lava-test-case"
    helper.write_text(FAKE_HELPER)
    helper.chmod(0o755)
    return tree


def _run_suite_script(tmp_path: Path, tree: Path, suite_dir: str) -> tuple[int, list[str]]:
    calls = tmp_path / "calls.txt"
    # The script runs `python3`: the interpreter running these tests, which has pytest.
    shim = tmp_path / "bin" / "python3"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "LAVA_CALLS": str(calls)}
    done = subprocess.run(["sh", str(tree / "lava-run-suite.sh"), suite_dir], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    return done.returncode, calls.read_text().splitlines() if calls.exists() else []


def test_every_test_becomes_a_lava_case_with_its_result_and_duration(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    rc, calls = _run_suite_script(tmp_path, tree, "suites/pin")
    assert rc == 0  # run.sh runs under set -e: the script must not end the LAVA run
    results = {call.split()[0]: call.split()[2] for call in calls}
    assert results == {"test_fake.test_ok": "pass", "test_fake.test_bad": "fail", "test_fake.test_skip": "skip",
                       "test_fake.test_error": "fail", "pytest-exit": "pass"}
    ok_call = next(c for c in calls if c.startswith("test_fake.test_ok "))
    assert ok_call.split()[3:5] == ["--measurement", ok_call.split()[4]] and ok_call.endswith("--units seconds")
    float(ok_call.split()[4])
    assert calls[-1] == "pytest-exit --result pass --measurement 1 --units exit-status"  # 1: some tests failed


def test_pytest_that_cannot_run_the_suite_is_a_failed_case(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    rc, calls = _run_suite_script(tmp_path, tree, "suites/no-such-suite")
    assert rc == 0
    assert calls == ["pytest-exit --result fail --measurement 4 --units exit-status"]  # 4: usage error
