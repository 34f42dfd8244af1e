"""Per-CPU value layout at the ABI level: one round_up(value_size, 8) slot per
*possible* CPU (from /sys/devices/system/cpu/possible), densely packed.

The buffers here are raw ctypes buffers with a guard area behind the slots,
so the kernel's layout is checked directly, not through bpfmap.layout.
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Iterator

import pytest

from bpfmap import BpfMap, Cmd, Features, MapType, bpf_raw, possible_cpus
from mapsuite import Recorder, elem_attr, errno_of, k, need_two_cpus, need_type

PERCPU_TYPES = [MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH]
GUARD = 64
FILL = 0xA5


def round_up8(n: int) -> int:
    return (n + 7) // 8 * 8


def slot_value(cpu: int, size: int) -> bytes:
    """A recognisable value for ``cpu``'s slot, ``size`` bytes, no zero byte."""
    return bytes(((cpu + 1) * 16 + i) % 255 + 1 for i in range(size))


class Raw:
    """Raw LOOKUP/UPDATE on a per-CPU map with guarded value buffers."""

    def __init__(self, m: BpfMap) -> None:
        self.m = m
        self.ncpus = len(possible_cpus())
        self.stride = round_up8(m.value_size)
        self.size = self.stride * self.ncpus
        self.key = ctypes.create_string_buffer(4)

    def lookup(self, index: int) -> bytes:
        """The whole buffer (slots + guard) after a lookup, pre-filled with FILL."""
        buf = ctypes.create_string_buffer(bytes([FILL]) * (self.size + GUARD), self.size + GUARD)
        self.key.raw = k(index)
        bpf_raw(Cmd.MAP_LOOKUP_ELEM,
                elem_attr(self.m.fd, ctypes.addressof(self.key), ctypes.addressof(buf)))
        return buf.raw

    def update(self, index: int, slots: list[bytes], pad: int = 0) -> None:
        body = b"".join(s + bytes([pad]) * (self.stride - len(s)) for s in slots)
        buf = ctypes.create_string_buffer(body + bytes([FILL]) * GUARD, len(body) + GUARD)
        self.key.raw = k(index)
        bpf_raw(Cmd.MAP_UPDATE_ELEM,
                elem_attr(self.m.fd, ctypes.addressof(self.key), ctypes.addressof(buf)))


@pytest.fixture(params=[(t, vs) for t in PERCPU_TYPES for vs in (4, 8, 12)],
                ids=lambda p: f"{p[0].name}-v{p[1]}")
def raw(request: pytest.FixtureRequest, features: Features) -> Iterator[Raw]:
    map_type, value_size = request.param
    need_type(features, map_type)
    with BpfMap.create(map_type, 4, value_size, 4) as m:
        yield Raw(m)


def test_lookup_fills_one_slot_per_possible_cpu(raw: Raw) -> None:
    need_two_cpus("telling per-CPU slots apart")
    vs = raw.m.value_size
    slots = [slot_value(cpu, vs) for cpu in range(raw.ncpus)]
    raw.update(1, slots)
    out = raw.lookup(1)
    for cpu in range(raw.ncpus):
        off = cpu * raw.stride
        assert out[off : off + vs] == slots[cpu], f"slot {cpu} at offset {off}"
    # The last possible CPU's slot is written and nothing after it: the
    # kernel's slot count is exactly the possible-CPU count.
    assert out[raw.size :] == bytes([FILL]) * GUARD, "the kernel wrote past ncpus slots"


def test_update_reads_values_at_the_stride(raw: Raw) -> None:
    need_two_cpus("a stride between per-CPU slots")
    # Non-zero padding between slots: the value bytes must still land in
    # the right CPU's slot (the stride is round_up(value_size, 8)).
    vs = raw.m.value_size
    slots = [slot_value(cpu + 7, vs) for cpu in range(raw.ncpus)]
    raw.update(2, slots, pad=0xEE)
    out = raw.lookup(2)
    for cpu in range(raw.ncpus):
        assert out[cpu * raw.stride : cpu * raw.stride + vs] == slots[cpu]


def test_fresh_or_missing_element(raw: Raw) -> None:
    if raw.m.map_type == MapType.PERCPU_ARRAY:
        out = raw.lookup(3)  # arrays start zeroed, in every CPU's slot
        for cpu in range(raw.ncpus):
            assert out[cpu * raw.stride : cpu * raw.stride + raw.m.value_size] == bytes(raw.m.value_size)
        assert out[raw.size :] == bytes([FILL]) * GUARD
    else:
        assert errno_of(lambda: raw.lookup(3)) == errno.ENOENT


def test_client_layout_agrees(raw: Raw) -> None:
    need_two_cpus("telling per-CPU slots apart")
    # bpfmap's decoded view of the same element matches the raw slots.
    vs = raw.m.value_size
    slots = [slot_value(cpu + 3, vs) for cpu in range(raw.ncpus)]
    raw.update(0, slots)
    assert raw.m.lookup(k(0)) == slots
    assert raw.m.layout.buf_size == raw.size


def describe_padding(pad: bytes, written: int) -> str:
    """What a slot's padding bytes hold after a lookup: "zeroed", "kept" (the
    bytes ``written`` there by the update), or their hex."""
    if pad == bytes(len(pad)):
        return "zeroed"
    if pad == bytes([written]) * len(pad):
        return "kept"
    return pad.hex()


@pytest.mark.parametrize(("map_type", "value_size"), [(t, vs) for t in PERCPU_TYPES for vs in (4, 12)],
                         ids=[f"{t.name}-v{vs}" for t in PERCPU_TYPES for vs in (4, 12)])
def test_slot_padding_after_a_padded_update(map_type: MapType, value_size: int, features: Features,
                                            record_property: Recorder) -> None:
    """The kernel copies round_up(value_size, 8) bytes per slot: whether the padding
    the update sent comes back on a lookup (stored) or as zeros is its choice, and
    is recorded for the first and the last slot. The value bytes are exact."""
    need_type(features, map_type)
    with BpfMap.create(map_type, 4, value_size, 4) as m:
        raw = Raw(m)
        slots = [slot_value(cpu, value_size) for cpu in range(raw.ncpus)]
        raw.update(1, slots, pad=0xEE)
        out = raw.lookup(1)
        for cpu in range(raw.ncpus):
            assert out[cpu * raw.stride : cpu * raw.stride + value_size] == slots[cpu]
        assert out[raw.size :] == bytes([FILL]) * GUARD
        last = (raw.ncpus - 1) * raw.stride
        record_property("slot_padding_after_update", {
            "first": describe_padding(out[value_size : raw.stride], 0xEE),
            "last": describe_padding(out[last + value_size : last + raw.stride], 0xEE)})
