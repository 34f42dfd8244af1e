"""Shared fixtures of the guest suites (run as root inside the guest VM).

Every test needs a usable bpf(2): without root, or when the kernel answers
EPERM/ENOSYS, the whole run skips with the reason instead of failing.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bpfmap import BpfError, Features, probe
from bpfmap.bpffs import is_bpffs, mount_bpffs, umount


@pytest.fixture(scope="session")
def features() -> Features:
    """The kernel's probed features; skips everything when bpf(2) is unusable."""
    if os.geteuid() != 0:
        pytest.skip("bpf map tests need root (CAP_BPF/CAP_SYS_ADMIN)")
    try:
        return probe()
    except BpfError as e:
        if e.errno in (errno.EPERM, errno.ENOSYS):
            pytest.skip(f"bpf(2) unavailable: {e}")
        raise


@pytest.fixture(scope="session", autouse=True)
def _kernel_facts(
    features: Features, record_testsuite_property: Callable[[str, object], None]
) -> None:
    """Note the kernel and what the probe saw once per suite (junit properties)."""
    record_testsuite_property("kernel_release", os.uname().release)
    for name, outcome in sorted(features.observed.items()):
        record_testsuite_property(f"probe.{name}", outcome)


@pytest.fixture
def bpffs(tmp_path: Path) -> Iterator[Path]:
    """A private bpffs instance on a temporary directory, unmounted afterwards.

    Private so the tests never depend on (or litter) /sys/fs/bpf.
    """
    target = tmp_path / "bpffs"
    target.mkdir()
    try:
        mount_bpffs(target)
    except OSError as e:
        if e.errno == errno.EPERM:
            pytest.skip(f"cannot mount a bpffs here: {e}")
        raise
    try:
        assert is_bpffs(target), f"{target} is not on a bpffs after mount"
        yield target
    finally:
        try:
            umount(target)
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            umount(target, detach=True)
