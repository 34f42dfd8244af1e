"""Helpers shared by the maps suite's test modules (not a test module itself).

The name is unique across suites because pytest's default import mode puts
each test directory on sys.path and imports modules by basename.
"""

from __future__ import annotations

import errno
import os
import pickle
import select
import signal
import struct
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

import bpfmap
from bpfmap import BpfError, BpfMap, Features, MapType, attrs, bpf_raw, map_get_fd_by_id

U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
PAGE_SIZE: int = os.sysconf("SC_PAGE_SIZE")
ELEM_SIZE: int = attrs.ELEM.size  # 32: end of *_ELEM's flags

Recorder = Callable[[str, object], None]
T = TypeVar("T")


def k(i: int) -> bytes:
    return U32.pack(i)


def v(i: int) -> bytes:
    return U64.pack(i)


def errno_of(call: Callable[[], object]) -> int:
    """The errno ``call`` fails with; fails the test if the call succeeds."""
    with pytest.raises(BpfError) as info:
        call()
    err = info.value.errno
    assert err is not None
    return err


def outcome(call: Callable[[], object]) -> str:
    """"ok", or the errno name the call failed with (for recording)."""
    try:
        result = call()
    except BpfError as e:
        return e.errname
    if isinstance(result, BpfMap):
        result.close()
    return "ok"


def observed_errno(record: Recorder, name: str, call: Callable[[], object]) -> int:
    """Like :func:`errno_of`, also noting the errno's name as a property."""
    err = errno_of(call)
    record(name, bpfmap.errno_name(err))
    return err


def need_type(features: Features, map_type: MapType) -> None:
    """Skip unless the probe could create ``map_type``."""
    if not features.has_map_type(map_type):
        seen = features.observed.get(f"map_type.{map_type.name}", "?")
        pytest.skip(f"kernel lacks BPF_MAP_TYPE_{map_type.name} (probe: {seen})")


def need_two_cpus(what: str, online: bool = False) -> None:
    """Skip a test whose meaning needs two CPUs (distinct per-CPU slots, a real race) on a kernel
    with one: it would pass whatever the kernel did with a second CPU. Counted as a skip."""
    count = len(os.sched_getaffinity(0)) if online else bpfmap.num_possible_cpus()
    if count < 2:
        kind = "online CPU" if online else "possible CPU"
        pytest.skip(f"the kernel has one {kind}: {what} needs two (a lab build without ACPI brings up one)")


def need_cmd(features: Features, cmd: bpfmap.Cmd) -> None:
    """Skip unless the probe found ``cmd``."""
    if not features.has_command(cmd):
        seen = features.observed.get(f"cmd.{cmd.name}", "?")
        pytest.skip(f"kernel lacks BPF_{cmd.name} (probe: {seen})")


def id_exists(map_id: int) -> bool:
    """Whether a map with this ID exists (GET_FD_BY_ID succeeds; else ENOENT)."""
    try:
        os.close(map_get_fd_by_id(map_id))
    except OSError as e:
        assert e.errno == errno.ENOENT
        return False
    return True


def elem_attr(fd: int, key: int = 0, value: int = 0, flags: int = 0, size: int = ELEM_SIZE) -> bytearray:
    """*_ELEM attribute bytes padded with zeros to ``size``."""
    raw = bytearray(attrs.pack_elem(fd, key, value, flags))
    return raw + bytearray(max(0, size - len(raw)))


def raw_errno(cmd: int, attr: bytes | bytearray, size: int | None = None) -> int:
    """The errno of a raw bpf(2) call that must fail."""
    return errno_of(lambda: bpf_raw(cmd, attr, size))


def ranges(numbers: list[int]) -> str:
    """Integers as sorted runs, "0-3,7,9-10": a set of keys short enough to record."""
    runs: list[list[int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def percpu_value(m: BpfMap, i: int) -> list[bytes] | bytes:
    """A value for ``m`` derived from ``i``: per-CPU maps get a distinct slot each."""
    if m.is_percpu:
        return [U64.pack(i * 1000 + cpu)[: m.value_size].ljust(m.value_size, b"\0")
                for cpu in range(m.layout.slots)]
    return U64.pack(i)[: m.value_size].ljust(m.value_size, b"\0")


def wait_for(pred: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll ``pred`` until it holds or ``timeout`` seconds pass (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


class ChildFailed(Exception):
    """A forked child raised; carries its exception text."""


class Child:
    """A forked child running one function; its result comes back on a pipe."""

    def __init__(self, pid: int, rfd: int) -> None:
        self.pid = pid
        self.rfd = rfd

    def result(self, deadline: float) -> object:
        """The child's return value (its exception re-raised), killing it at
        ``deadline`` (time.monotonic()) if it has not finished."""
        chunks: list[bytes] = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.kill(self.pid, signal.SIGKILL)
                    raise TimeoutError(f"child {self.pid} did not finish in time")
                ready, _, _ = select.select([self.rfd], [], [], left)
                if ready:
                    chunk = os.read(self.rfd, 65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
        finally:
            os.close(self.rfd)
            os.waitpid(self.pid, 0)
        if not chunks:
            raise ChildFailed(f"child {self.pid} died without a result")
        kind, value = pickle.loads(b"".join(chunks))
        if kind == "exc":
            raise value
        return value


def spawn(fn: Callable[[], object], close_in_child: tuple[int, ...] = ()) -> Child:
    """Fork a child that runs ``fn`` and sends back its result or exception.

    ``close_in_child`` are fds the child must not keep open (the write ends of
    pipes whose EOF other processes wait for).
    """
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(rfd)
            for fd in close_in_child:
                os.close(fd)
            try:
                payload = pickle.dumps(("ok", fn()))
            except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
                try:
                    payload = pickle.dumps(("exc", e))
                except Exception:
                    payload = pickle.dumps(("exc", ChildFailed(repr(e))))
            with os.fdopen(wfd, "wb") as w:
                w.write(payload)
        finally:
            os._exit(0)
    os.close(wfd)
    return Child(pid, rfd)


def run_in_child(fn: Callable[[], T], timeout: float = 60.0) -> T:
    """Run ``fn`` in a forked child and return its (picklable) result.

    A child lets a test drop privileges or lower rlimits without touching the
    pytest process. An exception in the child is re-raised here (pickled, so
    BpfError keeps its errno); a child that hangs is killed after ``timeout``.
    """
    return spawn(fn).result(time.monotonic() + timeout)  # type: ignore[return-value]
