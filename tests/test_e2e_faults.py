"""Fault tests, each on a real guest: the lab classifies every way a run can end, within bounds.

A copy of guest-tests/ gets an extra "fault" suite whose tests break the guest on purpose
(sysrq crash, a hang the host then freezes or kills, a splat in the kernel log).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.run import guest as guest_run
from lab.run import suites as runner
from lab.kernel.spec import parse_kernel_spec
from lab.core.outcome import Outcome
from lab.core.paths import GUEST_TESTS_DIR, cache_dir
from lab.core.timeouts import Timeouts
from lab.guest import assets
from lab.run.lifecycle import RunOutcome
from lab.vm.boot import booted
from lab.guest.assets import Prepared
from lab.run.request import RunRequest

pytestmark = pytest.mark.boot

FAULT_SUITE = '''
import os
import time


def test_a_runs_before_the_fault():
    assert os.uname().sysname == "Linux"


def test_b_fault():
    kind = os.environ.get("LAB_FAULT") or open("/root/lab/guest-tests/fault-kind").read().strip()
    if kind == "panic":
        with open("/proc/sysrq-trigger", "w") as trigger:
            trigger.write("c")
        time.sleep(30)
    elif kind == "hang":
        time.sleep(3600)
    elif kind == "warn":
        with open("/dev/kmsg", "w") as kmsg:
            kmsg.write("WARNING: CPU: 0 PID: 1 at lab/fault.c:1 lab_fault_test+0x0/0x10\\n")
    assert kind in ("panic", "hang", "warn")


def test_c_after_the_fault():
    assert True
'''


def qemu_children() -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", "qemu-system"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def signal_qemu(sig: signal.Signals, sent: list[int]) -> Callable[[], None]:
    """An action sending ``sig`` to every QEMU child, noting each pid in ``sent``."""
    def send() -> None:
        for pid in qemu_children():
            os.kill(pid, sig)
            sent.append(pid)

    return send


@pytest.fixture(scope="module")
def prepared() -> Prepared:
    return assets.prepare(parse_kernel_spec("debian:6.1"), cache_dir(), lambda message: None)


def fault_tree(tmp_path: Path, kind: str) -> runner.TestTree:
    root = tmp_path / "guest-tests"
    shutil.copytree(GUEST_TESTS_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "suites" / "fault").mkdir()
    (root / "suites" / "fault" / "test_fault_injection.py").write_text(FAULT_SUITE)
    (root / "fault-kind").write_text(kind + "\n")
    return runner.TestTree(root, {"fault": "suites/fault", "maps": "suites/maps"})


def execute(prepared: Prepared, tmp_path: Path, kind: str, suites: list[str],
            **options: object) -> RunOutcome:
    request = RunRequest(parse_kernel_spec("debian:6.1"), "debian:6.1", suites, "auto",
                                  tmp_path / "results", tree=fault_tree(tmp_path, kind), **options)  # type: ignore[arg-type]
    return guest_run.execute(request, prepared, cache_dir(), lambda message: None, lambda suite: None)


@pytest.fixture(autouse=True)
def no_qemu_left() -> Iterator[None]:
    yield
    assert not qemu_children(), "QEMU outlived the test"


def when_test_starts(results: Path, test_name: str, action: "callable[[], None]") -> threading.Thread:
    """Run action once the guest reports (via the stream) that test_name started."""
    def watch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            for log in results.glob("*/fault.log"):
                if f'"event": "start", "nodeid": "suites/fault/test_fault_injection.py::{test_name}"' in log.read_text():
                    time.sleep(1)  # let the test really get going
                    action()
                    return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def outcomes(result: RunOutcome) -> dict[str, str]:
    return {record.name.split("::")[-1]: record.outcome for suite in result.suites for record in suite.records}


def test_panic_mid_suite_is_kernel_crashed_and_earlier_results_are_kept(prepared: Prepared,
                                                                         tmp_path: Path) -> None:
    started = time.monotonic()
    result = execute(prepared, tmp_path, "panic", ["fault", "maps"])
    assert result.outcome is Outcome.KERNEL_CRASHED, result.reason
    assert "Kernel panic - not syncing" in result.reason
    assert "sysrq" in result.record.metadata.console_excerpt
    seen = outcomes(result)
    assert seen["test_a_runs_before_the_fault"] == "passed"
    assert seen["test_b_fault"] == "error"  # it was running when the guest died
    assert "test_c_after_the_fault" not in seen
    # maps ran beside fault (the guest's two CPUs, a suite each) and was cut by the same crash,
    # its finished tests kept; with one suite at a time nothing ran after it (test_lab_remoterun).
    assert result.record.metadata.suites_at_once == 2
    assert [s.name for s in result.suites] == ["fault", "maps"]
    maps = result.suites[1]
    assert maps.error and not maps.ok and maps.lost, maps.error
    assert (result.record.directory / "console.log").stat().st_size > 0
    assert time.monotonic() - started < 300


def test_frozen_qemu_is_timed_out_within_its_bound(prepared: Prepared, tmp_path: Path) -> None:
    frozen: list[int] = []
    watcher = when_test_starts(tmp_path / "results", "test_b_fault", signal_qemu(signal.SIGSTOP, frozen))
    started = time.monotonic()
    result = execute(prepared, tmp_path, "hang", ["fault"], suite_timeout=30)
    elapsed = time.monotonic() - started
    watcher.join(timeout=5)
    assert frozen, "the watcher never froze QEMU"
    assert result.outcome is Outcome.TIMED_OUT, result.reason
    assert "did not finish within 30 s" in result.reason
    assert outcomes(result)["test_a_runs_before_the_fault"] == "passed"
    assert elapsed < 30 + 120 + 60, elapsed  # boot + suite bound + the short dmesg attempt


def test_qemu_killed_mid_suite_is_lost_connection(prepared: Prepared, tmp_path: Path) -> None:
    killed: list[int] = []
    watcher = when_test_starts(tmp_path / "results", "test_b_fault", signal_qemu(signal.SIGKILL, killed))
    result = execute(prepared, tmp_path, "hang", ["fault"], suite_timeout=300)
    watcher.join(timeout=5)
    assert killed
    assert result.outcome is Outcome.LOST_CONNECTION, result.reason
    assert outcomes(result)["test_a_runs_before_the_fault"] == "passed"
    assert outcomes(result)["test_b_fault"] == "error"


def test_unmountable_root_is_boot_failed_with_the_console(prepared: Prepared, tmp_path: Path) -> None:
    result = execute(prepared, tmp_path, "warn", ["fault"], extra_cmdline="lab.root=/dev/nosuchdisk")
    assert result.outcome is Outcome.BOOT_FAILED, result.reason
    assert "cannot mount root /dev/nosuchdisk" in result.reason
    assert "lab-stage1" in result.record.metadata.console_excerpt
    assert result.suites == []


def test_splat_in_the_kernel_log_makes_a_green_run_kernel_warned(prepared: Prepared,
                                                                 tmp_path: Path) -> None:
    result = execute(prepared, tmp_path, "warn", ["fault"])
    assert all(suite.ok for suite in result.suites)
    assert result.outcome is Outcome.KERNEL_WARNED, result.reason
    assert "WARNING: CPU: 0 PID: 1 at lab/fault.c:1" in result.reason


def test_a_port_taken_before_qemu_binds_it_is_replaced(prepared: Prepared, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process grabs the chosen port first: QEMU cannot forward it, the lab picks another."""
    import socket

    from lab.vm import machine as machine_module

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken])
    real_free_port = machine_module.free_port
    monkeypatch.setattr(machine_module, "free_port", lambda: next(ports, None) or real_free_port())
    try:
        with booted(prepared, "tcg", tmp_path / "run", Timeouts().scaled_for("tcg")) as (machine, target):
            assert machine.ssh_port != taken
            assert target.run("true", 60).rc == 0
    finally:
        squatter.close()
    assert "Could not set up host forwarding rule" in (tmp_path / "run" / "console.log").read_text()
