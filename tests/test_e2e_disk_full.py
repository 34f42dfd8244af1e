"""Issue 14 item 7 on a real guest: the results directory is a small tmpfs that fills during the run.
A full disk is the host's failure: infra-error (exit 8) with one line naming it, never
lost-connection or timed-out, and no traceback."""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2ehelpers import lab, no_qemu_left  # noqa: F401  (autouse: no QEMU outlives a test)
from lab.core.outcome import Outcome, exit_code

pytestmark = pytest.mark.boot


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def mount_tmpfs(mount: Path, kib: int) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k,mode=0755", "tmpfs", str(mount)], check=True)


# (tmpfs KiB, where it fills), measured on debian:6.1: the boot's console log is ~24 KiB and the
# run's first files four pages; the pin suite's log and report then need ~24 KiB more.
SIZES = {"during the boot": 28, "during the suites": 64}


@pytest.mark.parametrize("kib", SIZES.values(), ids=SIZES.keys())
def test_a_full_results_disk_is_infra_error(kib: int, small_disk: Path) -> None:
    mount_tmpfs(small_disk, kib)
    done = lab("run", "--kernel", "debian:6.1", "--suite", "pin", "--results", str(small_disk), timeout=900)
    said = done.stdout + done.stderr
    assert done.returncode == exit_code(Outcome.INFRA_ERROR), said[-3000:]
    assert "Traceback" not in said
    # The summary's outcome line, or (when even the run's files did not fit) lab's own one line.
    outcome_lines = [line for line in said.splitlines()
                     if line.startswith(("outcome: infra-error", "lab: infrastructure error: "))]
    assert len(outcome_lines) == 1, said[-3000:]
    assert "No space left on device" in outcome_lines[0] or "disk is full" in outcome_lines[0]
    for metadata in small_disk.glob("*/metadata.json"):
        outcome = json.loads(metadata.read_text()).get("outcome")
        assert outcome in (None, "infra-error"), outcome  # None: even the outcome did not fit
