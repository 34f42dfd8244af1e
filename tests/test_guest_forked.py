"""The dump suite's forked checks (guest-tests/suites/dump/forked.py): what a child records comes
back to its owning test, and however a child fails, the owner fails (or skips) saying so."""
from __future__ import annotations

import os
import signal
import sys

import pytest
from guesthelpers import GUEST_TESTS

sys.path.insert(0, str(GUEST_TESTS / "suites" / "dump"))

import forked  # noqa: E402


def collected(child: forked.Child) -> list[tuple[str, object]]:
    recorded: list[tuple[str, object]] = []
    child.collect(lambda key, value: recorded.append((key, value)))
    return recorded


def test_what_the_child_records_comes_back_in_order() -> None:
    def check(record: forked.Recorder) -> None:
        record("fill", "batch")
        record("lru_evicted", 0)
        record("pid_differs", os.getpid() != parent)
        record("cpus", {0, 1})

    parent = os.getpid()
    assert collected(forked.start("walk", check)) == [
        ("fill", "batch"), ("lru_evicted", 0), ("pid_differs", True), ("cpus", "{0, 1}")]


def test_a_failed_assertion_fails_the_owner_with_the_childs_message_and_traceback() -> None:
    def check(record: forked.Recorder) -> None:
        record("fill", "elem")
        assert 1 + 1 == 3, "a key came back twice"

    recorded: list[tuple[str, object]] = []
    with pytest.raises(AssertionError) as info:
        forked.start("walk of hash", check).collect(lambda key, value: recorded.append((key, value)))
    message = str(info.value)
    assert message.startswith("walk of hash, in its forked child: AssertionError: a key came back twice")
    assert "Traceback" in message and "in check" in message
    assert recorded == [("fill", "elem")]  # what it recorded before failing is kept


def test_a_skip_in_the_child_skips_the_owner() -> None:
    def check(record: forked.Recorder) -> None:
        pytest.skip("no batch ops on this kernel")

    with pytest.raises(pytest.skip.Exception, match="no batch ops on this kernel"):
        forked.start("walk", check).collect(lambda key, value: None)


def test_a_child_that_dies_fails_its_owner() -> None:
    def check(record: forked.Recorder) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(AssertionError, match=r"walk: the forked check died without a verdict \(killed by signal 9\)"):
        forked.start("walk", check).collect(lambda key, value: None)


def test_an_uncollected_child_is_killed_and_reaped() -> None:
    def check(record: forked.Recorder) -> None:
        signal.pause()

    child = forked.start("walk", check)
    pid = child.pid
    child.kill()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    child.kill()  # a second kill is a no-op
