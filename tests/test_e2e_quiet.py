"""A WARNING the console never shows, on a real guest: debian:6.1 booted with `quiet`.

`quiet` sets the console loglevel to 4, and the kernel prints a line on the console only when
its level is below that: a WARNING (KERN_WARNING, 4) stays in the ring buffer. The run's
dmesg.txt has it, and the verdict must read it there (issue 14 item 6).

Debian's kernels have no CONFIG_PRINTK_CALLER, so the caller prefix ("[    T1]") cannot be
booted here; tests/test_lab_consolescan_golden.py proves it on logs of a kernel the lab built.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from e2ehelpers import no_own_qemu_left, own_qemu_children  # noqa: F401  (a fixture)

from lab.core.outcome import Outcome, exit_code
from lab.core.paths import GUEST_TESTS_DIR, cache_dir
from lab.guest import assets
from lab.kernel.spec import parse_kernel_spec
from lab.run import guest as guest_run
from lab.run import suites as runner
from lab.run.request import RunRequest

pytestmark = pytest.mark.boot

WARNING = "WARNING: CPU: 0 PID: 1 at lab/quiet.c:1 lab_quiet_test+0x0/0x10"

# "<4>": the record's level, as the kernel's own pr_warn() would give it.
QUIET_SUITE = f'''
def test_a_warning_at_level_4():
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write("<4>{WARNING}\\n")
'''


@pytest.fixture(autouse=True)
def no_qemu_left(no_own_qemu_left: None) -> None:
    """Only this process's QEMU is watched: others may boot beside this test."""


def quiet_tree(tmp_path: Path) -> runner.TestTree:
    root = tmp_path / "guest-tests"
    shutil.copytree(GUEST_TESTS_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "suites" / "quiet").mkdir()
    (root / "suites" / "quiet" / "test_quiet_warning.py").write_text(QUIET_SUITE)
    return runner.TestTree(root, {"quiet": "suites/quiet"})


def test_a_warning_hidden_from_a_quiet_console_is_kernel_warned(tmp_path: Path) -> None:
    prepared = assets.prepare(parse_kernel_spec("debian:6.1"), cache_dir(), lambda message: None)
    request = RunRequest(parse_kernel_spec("debian:6.1"), "debian:6.1", ["quiet"], "auto", tmp_path / "results",
                         extra_cmdline="quiet", tree=quiet_tree(tmp_path))
    started = time.monotonic()
    result = guest_run.execute(request, prepared, cache_dir(), lambda message: None, lambda suite: None)
    elapsed = time.monotonic() - started
    run_dir = result.record.directory
    console = (run_dir / "console.log").read_text(errors="replace")
    dmesg = (run_dir / "dmesg.txt").read_text(errors="replace")
    assert [suite.ok for suite in result.suites] == [True]
    # The premise: the console did not show it, dmesg did, on a kernel booted quiet.
    assert "lab-ready: sshd started on" in console and WARNING not in console
    assert "Command line:" in dmesg and " quiet" in dmesg and WARNING in dmesg
    assert result.outcome is Outcome.KERNEL_WARNED, result.reason
    assert exit_code(result.outcome) == 5
    # Named once, as the first finding of the whole boot's dmesg (no false finding before it).
    assert result.reason == f"{WARNING} (in dmesg.txt)"
    assert WARNING in result.record.metadata.console_excerpt
    print(f"quiet boot with a level-4 WARNING: {result.outcome.value} in {elapsed:.0f} s")
