"""What keeps tests apart when `make test` runs two at a time (pytest-xdist, `--dist loadgroup`).

A TCG guest keeps about one of this machine's two cores busy (the suites are one Python process
in the guest), so two tests at once use the machine instead of leaving a core idle. Three rules
make that safe, and they hold as well when the tests run one at a time:

- The processes a pytest process starts carry its own LAB_TEST_ID in their environment (QEMU
  inherits it from the lab), so a test counts its own worker's QEMUs only (e2ehelpers.qemu_pids),
  never its neighbour's; within one worker tests run one after another, as without xdist.
- Each module is an xdist group of its own, so its module fixtures are set up once. The modules
  that make bpf(2) calls on the host kernel share one group and run one after another: some of
  them list every map on the host and compare two listings. A test may name its group itself
  (one that reads the runs of another module's tests, on the same worker, after them).
- A test marked `exclusive` runs with no other test beside it: it changes something every run
  shares (a cached snapshot). Every other test holds a shared lock while it runs.
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
HOST_BPF_GROUP = "host-bpf"
LOCKS = Path(tempfile.gettempdir()) / f"bpf-kernel-lab-test-locks-{os.getuid()}"


def _makes_host_bpf_calls(module: str) -> bool:
    """The host-side tests of guest-tests/ (the client, its CLI, the suites run natively)."""
    return module.startswith("test_guest_") or module == "test_suites_catch_wrong_expectations"


def pytest_configure(config: pytest.Config) -> None:
    # Each process its own: xdist's workers inherit the controller's environment.
    os.environ[TEST_ID] = uuid.uuid4().hex


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # tryfirst: xdist's worker reads the groups in its own pytest_collection_modifyitems.
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:  # a test that names the group it needs
            continue
        module = item.path.stem
        item.add_marker(pytest.mark.xdist_group(HOST_BPF_GROUP if _makes_host_bpf_calls(module) else module))


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
def _apart(exclusive: bool) -> Iterator[None]:
    """A readers-writer lock with a turnstile: an exclusive test waiting at it lets no new test
    start, so it is not starved by the other worker's stream of shared holders."""
    with ExitStack() as held:
        if exclusive:
            held.enter_context(_flock("turnstile", fcntl.LOCK_EX))
            held.enter_context(_flock("machine", fcntl.LOCK_EX))
        else:
            with _flock("turnstile", fcntl.LOCK_EX):
                pass
            held.enter_context(_flock("machine", fcntl.LOCK_SH))
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    # Around the whole protocol, so module fixtures set up in a test's setup are inside it too.
    with _apart(item.get_closest_marker("exclusive") is not None):
        return (yield)
