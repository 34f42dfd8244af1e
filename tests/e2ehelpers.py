"""What the end-to-end tests that run the `lab` command share: running it, and the check
that no QEMU process outlives a test."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def real_runs() -> list[Path]:
    """The run directories under $LAB_SCHEMA_RUNS (none when it is not set)."""
    root = os.environ.get("LAB_SCHEMA_RUNS")
    return sorted(p.parent for p in Path(root).glob("*/metadata.json")) if root else []


def _environment_has(pid: int, entry: bytes) -> bool:
    try:
        return entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:  # gone already, or not ours to read
        return False


def qemu_pids() -> set[int]:
    """The QEMU processes this pytest process started (through any lab it ran): they carry its
    LAB_TEST_ID (tests/conftest.py), a neighbouring xdist worker's QEMUs do not."""
    found = subprocess.run(["pgrep", "-f", "qemu-system-x86_64"], capture_output=True, text=True, check=False).stdout
    pids = {int(pid) for pid in found.split()}
    mark = os.environ.get("LAB_TEST_ID")
    if mark is None:  # outside this repository's conftest: every QEMU on the machine
        return pids
    return {pid for pid in pids if _environment_has(pid, f"LAB_TEST_ID={mark}".encode())}


def own_qemu_children() -> list[int]:
    """This process's QEMUs only: other processes may be booting guests beside the test."""
    found = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", "qemu-system"], capture_output=True, text=True,
                           check=False)
    return [int(pid) for pid in found.stdout.split()]


@pytest.fixture
def no_own_qemu_left() -> Iterator[None]:
    """For tests that boot in-process: none of this process's QEMUs outlives the test."""
    yield
    assert not own_qemu_children(), "QEMU outlived the test"


@pytest.fixture(autouse=True)
def no_qemu_left() -> Iterator[None]:
    before = qemu_pids()
    yield
    left = qemu_pids() - before
    assert not left, f"QEMU processes left running: {left}"


def lab(*args: str, results: Path | None = None, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    """The `lab` command in a subprocess, as a user runs it (results under `results`)."""
    env = dict(os.environ)
    if results is not None:
        env["LAB_RESULTS"] = str(results)
    return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False, cwd=REPO)


def check_suite_records(run_dir: Path, suites: set[str]) -> dict:
    """Every suite ran, passed some tests and failed none; its JUnit file is there. Returns results.json."""
    data = json.loads((run_dir / "results.json").read_text())
    assert {s["suite"] for s in data["suites"]} == suites
    for suite in data["suites"]:
        assert suite["passed"] > 0 and suite["failed"] == 0 and suite["errors"] == 0, suite
    assert all(test["outcome"] in ("passed", "skipped") for test in data["tests"])
    for suite in suites:
        assert (run_dir / f"junit-{suite}.xml").is_file()
    return data
