"""The logic the suites use to turn what the kernel did into recorded properties: key ranges
(which LRU keys survived), the one-CPU block, the errno-order check, per-CPU padding words.
Pure functions and fake calls: no bpf(2) here except where a real map is named."""
from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable

import pytest
from guesthelpers import GUEST_TESTS

sys.path.insert(0, str(GUEST_TESTS / "suites" / "maps"))

from bpfmap import BpfError, Cmd
from bpfmap.cpus import on_one_cpu
from mapsuite import ranges
from test_maps_errno_order import Clash, Rule, check_clash
from test_maps_percpu_layout import describe_padding


def fails(err: int) -> Callable[[], None]:
    def call() -> None:
        raise BpfError(err, Cmd.MAP_UPDATE_ELEM)
    return call


def succeeds() -> None:
    return None


@pytest.mark.parametrize(("numbers", "text"), [
    ([], ""), ([5], "5"), ([3, 1, 2], "1-3"), ([0, 1, 2, 3, 7, 9, 10], "0-3,7,9-10"),
    ([192 + i for i in range(64)], "192-255"), ([4, 4, 5], "4-5"),
])
def test_ranges(numbers: list[int], text: str) -> None:
    assert ranges(numbers) == text


def test_on_one_cpu_pins_and_restores() -> None:
    before = os.sched_getaffinity(0)
    with on_one_cpu() as cpu:
        assert os.sched_getaffinity(0) == {cpu} and cpu == min(before)
    assert os.sched_getaffinity(0) == before


def test_on_one_cpu_restores_after_an_exception() -> None:
    before = os.sched_getaffinity(0)
    with pytest.raises(RuntimeError), on_one_cpu():
        raise RuntimeError("boom")
    assert os.sched_getaffinity(0) == before


def clash(both: int, a: int = errno.EPERM, b: int = errno.EINVAL,
          a_alone: int | None = None) -> Clash:
    return Clash(fails(both), Rule("read-only fd", fails(a if a_alone is None else a_alone), a),
                 Rule("bad flags", fails(b), b))


def test_check_clash_names_the_errno_and_the_rule_that_won() -> None:
    assert check_clash(clash(errno.EPERM)) == "EPERM (read-only fd)"
    assert check_clash(clash(errno.EINVAL)) == "EINVAL (bad flags)"


def test_check_clash_fails_on_a_third_errno() -> None:
    with pytest.raises(AssertionError, match="neither EPERM nor EINVAL"):
        check_clash(clash(errno.ENOENT))


def test_check_clash_fails_when_a_rule_alone_gives_another_errno() -> None:
    with pytest.raises(AssertionError, match="read-only fd alone: expected EPERM, got EBADF"):
        check_clash(clash(errno.EPERM, a_alone=errno.EBADF))


def test_check_clash_fails_when_the_call_breaking_both_succeeds() -> None:
    bad = Clash(succeeds, Rule("a", fails(errno.EPERM), errno.EPERM),
                Rule("b", fails(errno.EINVAL), errno.EINVAL))
    with pytest.raises(pytest.fail.Exception):
        check_clash(bad)


@pytest.mark.parametrize(("pad", "text"), [
    (bytes(4), "zeroed"), (b"\xee" * 4, "kept"), (b"\xee\x00\x00\x00", "ee000000"),
])
def test_describe_padding(pad: bytes, text: str) -> None:
    assert describe_padding(pad, 0xEE) == text
