"""LPM trie: longest-prefix match, exact-match update/delete, GET_NEXT_KEY,
ENOSPC when full, and the NOEXIST/EXIST behaviour that changed in 6.13."""

from __future__ import annotations

import errno
import ipaddress
import struct
from collections.abc import Iterator

import pytest

from bpfmap import ENOTSUPP, BpfError, BpfMap, Features, MapFlag, MapType, UpdateFlag
from mapsuite import Recorder, errno_of, need_type, v

KEY_SIZE = 8  # struct { __u32 prefixlen; __u8 data[4]; }: IPv4


def key(cidr: str) -> bytes:
    """An LPM key for ``cidr`` ("10.1.0.0/16"; a bare address is a /32)."""
    net = ipaddress.ip_network(cidr, strict=False) if "/" in cidr else None
    if net is None:
        return struct.pack("<I", 32) + ipaddress.ip_address(cidr).packed
    return struct.pack("<I", net.prefixlen) + net.network_address.packed


@pytest.fixture
def trie(features: Features) -> Iterator[BpfMap]:
    need_type(features, MapType.LPM_TRIE)
    with BpfMap.create(MapType.LPM_TRIE, KEY_SIZE, 8, 16, MapFlag.NO_PREALLOC, name="lpm_suite") as m:
        yield m


ROUTES = {"10.0.0.0/8": 1, "10.1.0.0/16": 2, "10.1.2.0/24": 3, "10.1.2.128/25": 4, "192.168.0.0/16": 5}


def fill(trie: BpfMap, routes: dict[str, int] = ROUTES) -> None:
    for cidr, n in routes.items():
        trie.update(key(cidr), v(n))


@pytest.mark.parametrize(("addr", "want"), [
    ("10.1.2.3", 3), ("10.1.2.200", 4), ("10.1.3.1", 2), ("10.200.0.1", 1),
    ("192.168.255.255", 5), ("11.0.0.1", None), ("9.255.255.255", None),
])
def test_longest_prefix_match(trie: BpfMap, addr: str, want: int | None) -> None:
    fill(trie)
    if want is None:
        assert errno_of(lambda: trie.lookup(key(addr))) == errno.ENOENT
    else:
        assert trie.lookup(key(addr)) == v(want)


def test_default_route_and_shorter_lookup_keys(trie: BpfMap) -> None:
    fill(trie)
    trie.update(key("0.0.0.0/0"), v(0))
    assert trie.lookup(key("11.0.0.1")) == v(0)
    # The lookup key's own prefixlen bounds the match: a /12 key cannot
    # match the /16 and /24 routes inside it.
    assert trie.lookup(key("10.1.0.0/12")) == v(1)
    assert trie.lookup(key("10.1.2.0/24")) == v(3)


def test_delete_is_exact_match(trie: BpfMap) -> None:
    fill(trie)
    # 10.1.2.3/32 is not a stored prefix, though a lookup would match /24.
    assert errno_of(lambda: trie.delete(key("10.1.2.3"))) == errno.ENOENT
    trie.delete(key("10.1.2.0/24"))
    assert trie.lookup(key("10.1.2.3")) == v(2), "falls back to the /16"
    assert trie.lookup(key("10.1.2.200")) == v(4), "the /25 under it stays"
    assert errno_of(lambda: trie.delete(key("10.1.2.0/24"))) == errno.ENOENT


def test_prefixlen_bounds(trie: BpfMap) -> None:
    bad = struct.pack("<I", 33) + bytes([10, 0, 0, 1])
    assert errno_of(lambda: trie.update(bad, v(1))) == errno.EINVAL
    assert errno_of(lambda: trie.lookup(bad)) == errno.ENOENT
    trie.update(key("10.0.0.1"), v(7))  # /32 is the longest allowed
    assert trie.lookup(key("10.0.0.1")) == v(7)


def test_get_next_key_walks_every_prefix(trie: BpfMap) -> None:
    assert errno_of(lambda: trie.get_next_key()) == errno.ENOENT, "empty trie"
    fill(trie)
    keys = list(trie.keys())
    assert sorted(keys) == sorted(key(c) for c in ROUTES), "every prefix exactly once"
    assert errno_of(lambda: trie.get_next_key(keys[-1])) == errno.ENOENT
    # A key that is not in the trie starts over at the first key.
    assert trie.get_next_key(key("172.16.0.0/12")) == keys[0]


def test_full_trie_is_enospc(trie: BpfMap) -> None:
    for i in range(16):
        trie.update(key(f"10.{i}.0.0/16"), v(i))
    assert errno_of(lambda: trie.update(key("11.0.0.0/8"), v(99))) == errno.ENOSPC
    assert errno_of(lambda: trie.lookup(key("11.0.0.1"))) == errno.ENOENT
    trie.update(key("10.3.0.0/16"), v(33))  # replacing an existing prefix still works
    assert trie.lookup(key("10.3.4.5")) == v(33)
    trie.delete(key("10.0.0.0/16"))
    trie.update(key("11.0.0.0/8"), v(99))
    assert trie.lookup(key("11.0.0.1")) == v(99)


def test_update_flags(trie: BpfMap, record_property: Recorder) -> None:
    """NOEXIST/EXIST are honoured since 6.13 (and stable backports); older
    tries ignore them. Both are accepted and which one is recorded; a kernel
    must be consistent about it."""
    trie.update(key("10.0.0.0/8"), v(1))
    try:
        trie.update(key("10.0.0.0/8"), v(2), UpdateFlag.NOEXIST)
    except BpfError as e:
        assert e.errno == errno.EEXIST
        honoured = True
        assert trie.lookup(key("10.0.0.0/8")) == v(1), "a refused update must not write"
    else:
        honoured = False
        assert trie.lookup(key("10.0.0.0/8")) == v(2), "an ignored NOEXIST acts like ANY"
    record_property("lpm_honours_noexist_exist", honoured)
    if honoured:
        assert errno_of(lambda: trie.update(key("172.16.0.0/16"), v(3), UpdateFlag.EXIST)) == errno.ENOENT
        assert errno_of(lambda: trie.lookup(key("172.16.0.0/16"))) == errno.ENOENT
    else:
        trie.update(key("172.16.0.0/16"), v(3), UpdateFlag.EXIST)
        assert trie.lookup(key("172.16.0.0/16")) == v(3), "an ignored EXIST inserts"
    trie.update(key("10.0.0.0/8"), v(4), UpdateFlag.EXIST)  # present: replaces either way
    assert trie.lookup(key("10.0.0.0/8")) == v(4)
    for flags in (3, 4, 8):
        assert errno_of(lambda: trie.update(key("10.2.0.0/16"), v(5), flags)) == errno.EINVAL


def test_lookup_and_delete_is_enotsupp(trie: BpfMap) -> None:
    fill(trie)
    assert errno_of(lambda: trie.lookup_and_delete(key("10.0.0.0/8"))) == ENOTSUPP
    assert trie.lookup(key("10.0.0.0/8")) == v(1)


def cidr(raw: bytes) -> str:
    """An IPv4 LPM key back as "a.b.c.d/len"."""
    prefixlen = struct.unpack_from("<I", raw)[0]
    return f"{ipaddress.ip_address(raw[4:8])}/{prefixlen}"


def test_get_next_key_order(trie: BpfMap, record_property: Recorder) -> None:
    """The order a walk visits the prefixes in is the trie's own (no hash seed):
    recorded, with nested prefixes, siblings and a default route."""
    routes = dict(ROUTES, **{"0.0.0.0/0": 0, "10.1.2.0/25": 6, "172.16.0.0/12": 7})
    fill(trie, routes)
    walked = list(trie.keys())
    order = [cidr(raw) for raw in walked]
    assert sorted(order) == sorted(str(ipaddress.ip_network(c)) for c in routes)
    record_property("lpm_walk_order", " ".join(order))
