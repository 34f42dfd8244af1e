"""Dumping a whole map: by iteration (as ``bpftool map dump``) or by batch."""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterator

from .errors import BpfError
from .layout import Value
from .maps import DEFAULT_BATCH_COUNT, BpfMap


def walk(m: BpfMap, limit: int | None = None) -> Iterator[tuple[bytes, Value]]:
    """Yield (key, value) by GET_NEXT_KEY + LOOKUP_ELEM until ENOENT.

    A key deleted between the two calls is skipped, as bpftool does. The walk
    is not a snapshot: with concurrent deletes a hash walk restarts from the
    first key (GET_NEXT_KEY of a missing key); past ``limit`` keys (default
    ``max_entries``) it raises RuntimeError instead of looping (see
    :meth:`BpfMap.keys`).
    """
    for key in m.keys(limit):
        try:
            value = m.lookup(key)
        except BpfError as e:
            if e.errno == _errno.ENOENT:
                continue
            raise
        yield key, value


def walk_batch(
    m: BpfMap, count: int = DEFAULT_BATCH_COUNT, limit: int | None = None
) -> Iterator[tuple[bytes, Value]]:
    """Yield (key, value) by LOOKUP_BATCH, following the cursor to ENOENT.

    A hash map answers ENOSPC when one bucket holds more elements than
    ``count``; the same call is then retried with ``count`` doubled. A call
    that copies nothing yet does not end the walk, or more than ``limit``
    elements (default ``max_entries``), means the cursor is not advancing:
    RuntimeError rather than an endless loop.
    """
    if count < 1:
        raise ValueError("count must be >= 1")
    bound = m.max_entries if limit is None else limit
    seen = 0
    cursor: bytes | None = None
    while True:
        try:
            res = m.lookup_batch(cursor, count)
        except BpfError as e:
            if e.errno == _errno.ENOSPC and count < max(m.max_entries, 1):
                count *= 2
                continue
            raise
        seen += res.count
        if seen > bound:
            raise RuntimeError(f"LOOKUP_BATCH walk passed {bound} elements: cursor not advancing")
        yield from res.items
        if res.done:
            return
        if res.count == 0:
            raise RuntimeError(f"LOOKUP_BATCH copied nothing and did not end (cursor {cursor!r})")
        cursor = res.cursor
