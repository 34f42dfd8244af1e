"""What keeps tests apart when `make test` runs two at a time (pytest-xdist, `--dist loadfile`).

A TCG guest keeps about one of this machine's two cores busy (the suites are one Python process
in the guest), so two tests at once use the machine instead of leaving a core idle. Each test
module runs on one worker (its module fixtures are set up once, its tests in their order), and
three rules make the rest safe; they hold as well when the tests run one at a time:

- The processes a pytest process starts carry its own LAB_TEST_ID in their environment (QEMU
  inherits it from the lab), so a test counts its own worker's QEMUs only (e2ehelpers.qemu_pids),
  never its neighbour's; within one worker tests run one after another, as without xdist.
- The tests that make bpf(2) calls on the host kernel run one at a time among themselves: some
  list every map on the host and compare two listings.
- A test marked `exclusive` runs with no other test beside it: it changes something every run
  shares (a cached snapshot). Every other test holds a shared lock while it runs.

(Not xdist_group: pytest 9 moved the node id that xdist's loadgroup rewrites, so its groups are
silently ignored there.)
"""
from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

TEST_ID = "LAB_TEST_ID"
LOCKS = Path(tempfile.gettempdir()) / f"bpf-kernel-lab-test-locks-{os.getuid()}"


def _makes_host_bpf_calls(module: str) -> bool:
    """The host-side tests of guest-tests/ (the client, its CLI, the suites run natively)."""
    return module.startswith("test_guest_") or module == "test_suites_catch_wrong_expectations"


def pytest_configure(config: pytest.Config) -> None:
    # Each process its own: xdist's workers inherit the controller's environment.
    os.environ[TEST_ID] = uuid.uuid4().hex


@contextmanager
def _flock(name: str, mode: int) -> Iterator[None]:
    LOCKS.mkdir(exist_ok=True)
    fd = os.open(LOCKS / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


@contextmanager
def _apart(exclusive: bool, host_bpf: bool) -> Iterator[None]:
    """A readers-writer lock with a turnstile (an exclusive test waiting at it lets no new test
    start, so it is not starved by the other worker's stream of shared holders), then the host's
    bpf(2) for the tests that use it."""
    with ExitStack() as held:
        if exclusive:
            held.enter_context(_flock("turnstile", fcntl.LOCK_EX))
            held.enter_context(_flock("machine", fcntl.LOCK_EX))
        else:
            with _flock("turnstile", fcntl.LOCK_EX):
                pass
            held.enter_context(_flock("machine", fcntl.LOCK_SH))
        if host_bpf:
            held.enter_context(_flock("host-bpf", fcntl.LOCK_EX))
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    # Around the whole protocol, so module fixtures set up in a test's setup are inside it too.
    with _apart(item.get_closest_marker("exclusive") is not None, _makes_host_bpf_calls(item.path.stem)):
        return (yield)
