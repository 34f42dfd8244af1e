"""Queue and stack maps: push (UPDATE), peek (LOOKUP), pop
(LOOKUP_AND_DELETE), order, full and empty behaviour, refused commands."""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Iterator

import pytest

from bpfmap import BpfMap, Cmd, Features, MapType, UpdateFlag, bpf_raw
from mapsuite import Recorder, elem_attr, errno_of, need_cmd, need_type, v

MAX = 4


@pytest.fixture(params=[MapType.QUEUE, MapType.STACK], ids=lambda t: t.name)
def qs(request: pytest.FixtureRequest, features: Features) -> Iterator[BpfMap]:
    need_type(features, request.param)
    need_cmd(features, Cmd.MAP_LOOKUP_AND_DELETE_ELEM)
    with BpfMap.create(request.param, 0, 8, MAX, name="qs_suite") as m:
        yield m


def pop_all(m: BpfMap) -> list[bytes]:
    out: list[bytes] = []
    for _ in range(MAX + 1):  # bounded: at most MAX elements, then ENOENT
        try:
            x = m.lookup_and_delete(None)
        except OSError as e:
            assert e.errno == errno.ENOENT
            return out
        assert isinstance(x, bytes)
        out.append(x)
    pytest.fail(f"more than {MAX} pops from a map of {MAX}")


def in_pop_order(m: BpfMap, pushed: list[bytes]) -> list[bytes]:
    return pushed if m.map_type == MapType.QUEUE else pushed[::-1]


def test_order(qs: BpfMap) -> None:
    pushed = [v(i) for i in (1, 2, 3)]
    for x in pushed:
        qs.update(None, x)
    assert pop_all(qs) == in_pop_order(qs, pushed), "queue is FIFO, stack LIFO"


def test_peek_does_not_remove(qs: BpfMap) -> None:
    qs.update(None, v(1))
    qs.update(None, v(2))
    head = v(1) if qs.map_type == MapType.QUEUE else v(2)
    assert qs.lookup(None) == head
    assert qs.lookup(None) == head
    assert qs.lookup_and_delete(None) == head
    assert qs.lookup(None) != head


def test_empty_is_enoent(qs: BpfMap) -> None:
    assert errno_of(lambda: qs.lookup(None)) == errno.ENOENT
    assert errno_of(lambda: qs.lookup_and_delete(None)) == errno.ENOENT
    qs.update(None, v(1))
    qs.lookup_and_delete(None)
    assert errno_of(lambda: qs.lookup_and_delete(None)) == errno.ENOENT


def test_full_is_e2big_and_exist_overwrites_the_oldest(qs: BpfMap) -> None:
    pushed = [v(i) for i in range(MAX)]
    for x in pushed:
        qs.update(None, x)
    assert errno_of(lambda: qs.update(None, v(100))) == errno.E2BIG
    qs.update(None, v(100), UpdateFlag.EXIST)  # drops the oldest (v(0)) to make room
    assert pop_all(qs) == in_pop_order(qs, pushed[1:] + [v(100)])


@pytest.mark.parametrize("flags", [int(UpdateFlag.NOEXIST), 3, 8, int(UpdateFlag.F_LOCK)],
                         ids=["NOEXIST", "NOEXIST|EXIST", "8", "F_LOCK"])
def test_push_bad_flags_are_einval(qs: BpfMap, flags: int) -> None:
    assert errno_of(lambda: qs.update(None, v(1), flags)) == errno.EINVAL
    assert errno_of(lambda: qs.lookup(None)) == errno.ENOENT, "nothing was pushed"


def test_delete_and_get_next_key_are_einval(qs: BpfMap) -> None:
    qs.update(None, v(1))
    assert errno_of(lambda: qs.delete(None)) == errno.EINVAL
    assert errno_of(lambda: qs.get_next_key()) == errno.EINVAL
    assert qs.lookup(None) == v(1)


def test_lookup_flags(qs: BpfMap) -> None:
    qs.update(None, v(1))
    assert errno_of(lambda: qs.lookup(None, int(UpdateFlag.F_LOCK))) == errno.EINVAL
    assert errno_of(lambda: qs.lookup_and_delete(None, int(UpdateFlag.F_LOCK))) == errno.EINVAL
    assert errno_of(lambda: qs.lookup_and_delete(None, int(UpdateFlag.NOEXIST))) == errno.EINVAL
    assert qs.lookup(None) == v(1), "refused pops removed nothing"


def test_key_pointer_must_be_null(qs: BpfMap) -> None:
    # key_size is 0: any key pointer is EINVAL (the client passes NULL).
    qs.update(None, v(1))
    key = ctypes.create_string_buffer(8)
    val = ctypes.create_string_buffer(8)
    for cmd in (Cmd.MAP_LOOKUP_ELEM, Cmd.MAP_UPDATE_ELEM, Cmd.MAP_LOOKUP_AND_DELETE_ELEM):
        attr = elem_attr(qs.fd, ctypes.addressof(key), ctypes.addressof(val))
        assert errno_of(lambda: bpf_raw(cmd, attr)) == errno.EINVAL, cmd.name
    assert pop_all(qs) == [v(1)]


def _value_after_refused(qs: BpfMap, cmd: Cmd) -> tuple[int, str]:
    """(errno, what the value buffer holds) after ``cmd`` on ``qs`` with a
    pre-filled buffer: "untouched", "zeroed" or its hex."""
    fill = b"\x5a" * 8
    val = ctypes.create_string_buffer(fill, 8)
    err = errno_of(lambda: bpf_raw(cmd, elem_attr(qs.fd, 0, ctypes.addressof(val))))
    if val.raw == fill:
        return err, "untouched"
    return err, "zeroed" if val.raw == bytes(8) else val.raw.hex()


def test_empty_peek_and_pop_and_the_value_buffer(qs: BpfMap, record_property: Recorder) -> None:
    """Empty is ENOENT (exact); whether the kernel wrote the caller's value buffer
    anyway is its choice, recorded for a map never used and one emptied by a pop."""
    seen = {}
    for state in ("fresh", "emptied"):
        if state == "emptied":
            qs.update(None, v(1))
            assert qs.lookup_and_delete(None) == v(1)
        for what, cmd in (("peek", Cmd.MAP_LOOKUP_ELEM), ("pop", Cmd.MAP_LOOKUP_AND_DELETE_ELEM)):
            err, buffer = _value_after_refused(qs, cmd)
            assert err == errno.ENOENT
            seen[f"{what} {state}"] = buffer
    record_property("value_buffer_on_empty", seen)
