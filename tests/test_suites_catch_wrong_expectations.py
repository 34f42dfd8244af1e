"""The maps suite can fail: flip one expected errno and it must.

A copy of one maps test module (with the guest-tests conftest, ini and the
suite's helper module) runs with this host's pytest on this host's kernel:
unmodified it passes; with ``errno.EEXIST`` turned into ``errno.ENOENT`` in
its one NOEXIST-on-an-existing-key assertion, exactly the tests holding that
assertion fail. Needs root and a usable bpf(2), like the suites themselves.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

GUEST_TESTS = Path(__file__).resolve().parent.parent / "guest-tests"
MAPS = GUEST_TESTS / "suites" / "maps"
TARGET = "test_maps_hash.py"
RIGHT = "== errno.EEXIST"
WRONG = "== errno.ENOENT"
FLIPPED_TEST = "test_update_noexist"


@pytest.fixture(scope="module")
def bpf_usable() -> None:
    if os.geteuid() != 0:
        pytest.skip("the maps suite needs root (CAP_BPF/CAP_SYS_ADMIN)")
    if str(GUEST_TESTS) not in sys.path:
        sys.path.insert(0, str(GUEST_TESTS))
    from bpfmap import BpfError, BpfMap, MapType

    try:
        BpfMap.create(MapType.HASH, 4, 4, 1).close()
    except BpfError as e:
        if e.errno in (errno.EPERM, errno.ENOSYS):
            pytest.skip(f"bpf(2) unavailable here: {e}")
        raise


def copy_suite(dest: Path, text: str) -> Path:
    """A minimal guest-tests tree under ``dest`` holding ``text`` as TARGET."""
    shutil.copy(GUEST_TESTS / "pytest.ini", dest / "pytest.ini")
    shutil.copy(GUEST_TESTS / "conftest.py", dest / "conftest.py")
    suite = dest / "suites" / "maps"
    suite.mkdir(parents=True)
    shutil.copy(MAPS / "mapsuite.py", suite / "mapsuite.py")
    (suite / TARGET).write_text(text)
    return suite / TARGET


def run_copy(root: Path, test_file: Path) -> tuple[int, dict[str, str], str]:
    """pytest on the copy: (exit code, {test name: outcome}, output)."""
    junit = root / "junit.xml"
    env = dict(os.environ, PYTHONPATH=str(GUEST_TESTS))  # bpfmap, from the real tree
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         f"--junitxml={junit}", "-o", "junit_family=xunit1", str(test_file)],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = {child.tag for child in case} & {"failure", "error", "skipped"}
        outcomes[case.get("name", "")] = kinds.pop() if kinds else "passed"
    return proc.returncode, outcomes, proc.stdout + proc.stderr


def test_flipped_errno_fails_the_suite(bpf_usable: None, tmp_path: Path) -> None:
    original = (MAPS / TARGET).read_text()
    assert original.count(RIGHT) == 1, f"expected one {RIGHT!r} in {TARGET} to flip"

    good_root = tmp_path / "good"
    good_root.mkdir()
    rc, outcomes, out = run_copy(good_root, copy_suite(good_root, original))
    assert rc == 0, out
    assert outcomes and set(outcomes.values()) == {"passed"}, out

    bad_root = tmp_path / "bad"
    bad_root.mkdir()
    rc, bad_outcomes, out = run_copy(bad_root, copy_suite(bad_root, original.replace(RIGHT, WRONG)))
    assert rc == 1, out
    failed = {name for name, o in bad_outcomes.items() if o == "failure"}
    # Exactly the tests with the flipped assertion fail (one per hash kind),
    # and nothing else changed outcome.
    assert failed and all(name.startswith(FLIPPED_TEST + "[") for name in failed), failed
    assert failed == {name for name in outcomes if name.startswith(FLIPPED_TEST + "[")}
    assert {n: o for n, o in bad_outcomes.items() if n not in failed} == {
        n: o for n, o in outcomes.items() if n not in failed}
