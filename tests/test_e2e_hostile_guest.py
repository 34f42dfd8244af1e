"""A guest that works against the lab, on a real guest (issue 14): it floods the console, links its
JUnit report to /dev/zero, or freezes while the tests are uploaded. Each run ends in an outcome
with its reason, the host's memory and disk bounded (the caps lowered here so the flood is short).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from e2ehelpers import no_own_qemu_left, own_qemu_children  # noqa: F401  (a fixture)

from lab.core.outcome import Outcome
from lab.core.paths import GUEST_TESTS_DIR, cache_dir
from lab.guest import assets
from lab.guest.assets import Prepared
from lab.kernel.spec import parse_kernel_spec
from lab.results import layout
from lab.run import guest as guest_run
from lab.run import suites as runner
from lab.run.lifecycle import RunOutcome
from lab.run.request import RunRequest
from lab.target import ssh
from lab.vm import console as console_module

pytestmark = pytest.mark.boot

STORM_SUITE = '''
def test_floods_the_console():
    line = b"[lab] printk storm: a guest that never stops talking " * 40 + b"\\n"
    with open("/dev/console", "wb", buffering=0) as console:
        for _ in range(2000):  # about 4 MB
            console.write(line)
        console.write(b"lab-storm-end\\n")
'''

HOSTILE_REPORT_SUITE = '''
import os


def test_links_its_report_to_dev_zero():
    os.symlink("/dev/zero", "/root/lab/out/hostile.xml")  # pytest writes its report through it
'''


@pytest.fixture(autouse=True)
def no_qemu_left(no_own_qemu_left: None) -> None:
    """Only this process's QEMU is watched: others may boot beside this test."""


@pytest.fixture(scope="module")
def prepared() -> Prepared:
    return assets.prepare(parse_kernel_spec("debian:6.1"), cache_dir(), lambda message: None)


def hostile_tree(tmp_path: Path, ballast: int = 0) -> runner.TestTree:
    root = tmp_path / "guest-tests"
    shutil.copytree(GUEST_TESTS_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    for name, code in (("storm", STORM_SUITE), ("hostile", HOSTILE_REPORT_SUITE)):
        (root / "suites" / name).mkdir()
        (root / "suites" / name / f"test_{name}_guest.py").write_text(code)
    if ballast:  # an upload long enough to freeze the guest in the middle of it
        (root / "ballast.bin").write_bytes(os.urandom(ballast))
    return runner.TestTree(root, {"storm": "suites/storm", "hostile": "suites/hostile", "maps": "suites/maps"})


def execute(prepared: Prepared, tmp_path: Path, suites: list[str], ballast: int = 0, **options: object) -> RunOutcome:
    request = RunRequest(parse_kernel_spec("debian:6.1"), "debian:6.1", suites, "auto", tmp_path / "results",
                         tree=hostile_tree(tmp_path, ballast), **options)  # type: ignore[arg-type]
    return guest_run.execute(request, prepared, cache_dir(), lambda message: None, lambda suite: None)


def test_a_console_flood_and_a_dev_zero_report_end_as_outcomes_with_bounded_files(
        prepared: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_module, "LOG_CAP", 256 << 10)
    monkeypatch.setattr(console_module, "WINDOW", 64 << 10)
    result = execute(prepared, tmp_path, ["storm", "hostile"])
    run_dir = result.record.directory
    storm, hostile = result.suites
    assert storm.ok, storm.error
    # The report is refused, not read for ever; the test that finished is kept from the stream.
    assert hostile.error.startswith("report refused: ") and "not a regular file" in hostile.error
    assert [r.outcome for r in hostile.records] == ["passed"]
    assert not layout.suite_junit(run_dir, "hostile").exists()
    assert result.outcome is Outcome.FAILED, result.reason
    assert "hostile" in result.reason
    console_log = (run_dir / "console.log").read_bytes()
    assert len(console_log) < (256 << 10) + (64 << 10) + 4096
    assert b"[lab: console.log truncated at 262144 bytes" in console_log
    assert b"lab-storm-end" in console_log[-(64 << 10) - 512:]  # the end of the flood, from the window
    warnings = json.loads((run_dir / "metadata.json").read_text())["warnings"]
    assert any("console.log truncated at 262144 bytes" in w for w in warnings), warnings


def test_a_guest_frozen_while_the_tests_are_uploaded_is_timed_out(prepared: Prepared, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    frozen: list[int] = []
    results = tmp_path / "results"

    def freeze_at_ship() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not frozen:
            for metadata in results.glob("*/metadata.json"):
                try:
                    stages = json.loads(metadata.read_text()).get("stages", {})
                except ValueError:
                    continue  # written meanwhile
                if stages.get("ship", {}).get("status") == "running":
                    time.sleep(3)  # past ship's rm and mkdir, into the upload (96 MB take far longer under TCG)
                    for pid in own_qemu_children():
                        os.kill(pid, signal.SIGSTOP)
                        frozen.append(pid)
            time.sleep(0.05)

    watcher = threading.Thread(target=freeze_at_ship, daemon=True)
    watcher.start()
    started = time.monotonic()
    result = execute(prepared, tmp_path, ["maps"], ballast=96 << 20, command_timeout=20)
    elapsed = time.monotonic() - started
    watcher.join(timeout=5)
    assert frozen, "the watcher never froze QEMU"
    assert result.outcome is Outcome.TIMED_OUT, result.reason
    assert "upload of" in result.reason and "did not finish within 20 s" in result.reason
    assert result.record.metadata.stages["ship"]["status"] == "failed"
    assert elapsed < 200 + 20 + ssh.ABORT_GRACE + 30, elapsed
