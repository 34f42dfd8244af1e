"""Shared by the host tests of guest-tests/bpfmap (tests/test_guest_*.py).

Importing it puts guest-tests/ on sys.path (so ``import bpfmap`` works). A
test module that makes real bpf(2) calls also imports the fixtures
``features`` (skips without root or a usable bpf(2)), ``no_leaked_fds``
(autouse: every test must leave no new fd behind) and ``bpffs`` (a private
bpffs mount) from here; pytest picks fixtures up from the module's namespace.
Not a test module (pytest collects only test_*.py).
"""

from __future__ import annotations

import errno
import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

GUEST_TESTS = Path(__file__).resolve().parent.parent / "guest-tests"
if str(GUEST_TESTS) not in sys.path:
    sys.path.insert(0, str(GUEST_TESTS))

import bpfmap  # noqa: E402
from bpfmap import BpfError, Features  # noqa: E402
from bpfmap.bpffs import mount_bpffs, umount  # noqa: E402


@pytest.fixture(scope="module")
def features() -> Features:
    if os.geteuid() != 0:
        pytest.skip("bpf(2) map tests need root")
    try:
        return bpfmap.probe()
    except BpfError as e:
        if e.errno in (errno.EPERM, errno.ENOSYS):
            pytest.skip(f"bpf(2) unavailable here: {e}")
        raise


def open_fds() -> dict[int, str]:
    """This process's open fds and what they point at."""
    fds: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:  # the directory fd listdir itself used
            continue
    return fds


@pytest.fixture(autouse=True)
def no_leaked_fds(features: Features) -> Iterator[None]:
    """Every test must leave no new fd behind (bpf maps or anything else),
    on success and on failure."""
    before = open_fds()
    yield
    gc.collect()
    leaked = {fd: target for fd, target in open_fds().items() if before.get(fd) != target}
    assert not leaked, f"fds leaked by the test: {leaked}"


@pytest.fixture
def bpffs(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "bpffs"
    target.mkdir()
    mount_bpffs(target)
    try:
        yield target
    finally:
        umount(target, detach=True)
