"""Helpers shared by the pin suite: other processes, dropped privileges,
world-reachable bpffs mounts, waiting for a map ID to go away.

Not a test module; the pin tests import it from their own directory.
"""

from __future__ import annotations

import errno
import os
import pwd
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import bpfmap
from bpfmap import BpfError, map_get_fd_by_id
from bpfmap.bpffs import is_bpffs, mount_bpffs, umount

PKG_ROOT = Path(bpfmap.__file__).resolve().parent.parent
CAP_BPF = 39
# Freeing a map after its last reference may be deferred (work queues, RCU);
# under TCG that can take a while, but not this long.
GONE_TIMEOUT = 30.0


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that can import bpfmap."""
    env = dict(os.environ, PYTHONPATH=str(PKG_ROOT), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd="/",
    )


@dataclass(frozen=True)
class User:
    """The unprivileged account the tests switch to."""

    uid: int
    gid: int
    name: str


def unprivileged_user() -> User:
    """``labuser`` in the lab's image; elsewhere uid/gid 65534 (nobody),
    which needs no account to exist."""
    try:
        pw = pwd.getpwnam("labuser")
    except KeyError:
        return User(65534, 65534, "uid 65534")
    return User(pw.pw_uid, pw.pw_gid, "labuser")


# Prepended to child scripts: drop to uid/gid with only the capabilities
# listed (maybe none), *after* importing what the script needs as root.
DROP = r"""
import ctypes, os
_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_KEEPCAPS = 8
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

def drop(uid, gid, caps):
    if _libc.prctl(PR_SET_KEEPCAPS, 1 if caps else 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # two {effective, permitted, inheritable}
    for cap in caps:
        word, bit = divmod(cap, 32)
        data[word * 3] |= 1 << bit
        data[word * 3 + 1] |= 1 << bit
    if _libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    with open("/proc/self/status") as f:
        eff = [l.split()[1] for l in f if l.startswith("CapEff:")][0]
    want = sum(1 << c for c in caps)
    if int(eff, 16) != want or os.geteuid() != uid:
        raise RuntimeError(f"privileges not dropped: CapEff={eff}, euid={os.geteuid()}")
"""


@pytest.fixture
def public_bpffs() -> Iterator[Path]:
    """A private bpffs on a directory every user can reach (pytest's tmp
    directories are 0700, which would hide the pins from another user)."""
    base = Path(tempfile.mkdtemp(prefix="pin-suite-", dir="/tmp"))
    try:
        base.chmod(0o755)
        mount_bpffs(base)
    except OSError as e:
        base.rmdir()
        if e.errno == errno.EPERM:
            pytest.skip(f"cannot mount a bpffs here: {e}")
        raise
    try:
        assert is_bpffs(base)
        yield base
    finally:
        try:
            umount(base)
        except OSError:
            umount(base, detach=True)
        base.rmdir()


def map_id_alive(map_id: int) -> bool:
    """Does MAP_GET_FD_BY_ID still find ``map_id``?"""
    try:
        fd = map_get_fd_by_id(map_id)
    except BpfError as e:
        if e.errno == errno.ENOENT:
            return False
        raise
    os.close(fd)
    return True


def wait_map_gone(map_id: int, timeout: float = GONE_TIMEOUT) -> float:
    """Seconds until ``map_id`` disappears; AssertionError after ``timeout``."""
    start = time.monotonic()
    delay = 0.005
    while map_id_alive(map_id):
        waited = time.monotonic() - start
        if waited > timeout:
            raise AssertionError(f"map ID {map_id} still present after {waited:.1f} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return time.monotonic() - start
