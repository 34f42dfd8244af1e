"""Which map commands and map types the running kernel supports, by trying.

An unknown command number and an unknown map type both fail with EINVAL
(bpf(2)'s default branch; find_and_alloc_map). Every trial below is built so
that a kernel which *has* the feature cannot answer EINVAL: it succeeds or
fails for another reason (ENOENT on an empty map, ENOTSUPP for a command the
map type lacks), which still proves the command exists. Kernel versions are
never consulted.
"""

from __future__ import annotations

import errno as _errno
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from .constants import Cmd, MapFlag, MapType
from .errors import BpfError
from .maps import BpfMap
from .objects import map_get_fd_by_id, map_get_next_id, obj_get, obj_pin

_KEY = b"\x01\x00\x00\x00"
_VAL = b"\x02\x00\x00\x00"


@dataclass(frozen=True)
class Features:
    """Probe results; ``observed`` maps each trial to "ok" or the errno name."""

    commands: frozenset[Cmd]
    map_types: frozenset[MapType]
    observed: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def has_command(self, cmd: int) -> bool:
        return cmd in self.commands

    def has_map_type(self, map_type: int) -> bool:
        return map_type in self.map_types

    @property
    def has_batch(self) -> bool:
        """All four batch commands are present."""
        return all(
            c in self.commands
            for c in (
                Cmd.MAP_LOOKUP_BATCH,
                Cmd.MAP_LOOKUP_AND_DELETE_BATCH,
                Cmd.MAP_UPDATE_BATCH,
                Cmd.MAP_DELETE_BATCH,
            )
        )


def _try(name: str, trial: Callable[[], object], observed: dict[str, str]) -> bool:
    """Run ``trial``: False on EINVAL, True on success or any other errno.

    EPERM is re-raised: without privilege every command may answer EPERM
    before the kernel even looks at the command number, so nothing is learnt.
    """
    try:
        trial()
    except BpfError as e:
        observed[name] = e.errname
        if e.errno == _errno.EPERM:
            raise
        return e.errno != _errno.EINVAL
    observed[name] = "ok"
    return True


def _create_and_close(map_type: MapType) -> None:
    if map_type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        with BpfMap.create(MapType.ARRAY, 4, 4, 1) as inner:
            BpfMap.create(map_type, 4, 4, 1, inner_map_fd=inner.fd).close()
    elif map_type == MapType.LPM_TRIE:
        # LPM tries refuse preallocation; key = u32 prefixlen + 4 data bytes.
        BpfMap.create(map_type, 8, 4, 1, MapFlag.NO_PREALLOC).close()
    elif map_type in (MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER):
        BpfMap.create(map_type, 0, 4, 1).close()
    else:
        BpfMap.create(map_type, 4, 4, 1).close()


def probe_map_type(map_type: MapType, observed: dict[str, str] | None = None) -> bool:
    """Can a map of ``map_type`` be created (EINVAL means the type is unknown)?"""
    return _try(f"map_type.{map_type.name}", lambda: _create_and_close(map_type),
                observed if observed is not None else {})


def _close_fd(fd: int) -> None:
    os.close(fd)


def _command_trials(scratch: BpfMap) -> dict[Cmd, Callable[[], object]]:
    """One trial per command, using the empty-ish hash map ``scratch``."""

    def freeze() -> None:
        with BpfMap.create(MapType.HASH, 4, 4, 1) as m:
            m.freeze()

    return {
        Cmd.MAP_CREATE: lambda: BpfMap.create(MapType.HASH, 4, 4, 1).close(),
        Cmd.MAP_LOOKUP_ELEM: lambda: scratch.lookup(_KEY),
        Cmd.MAP_UPDATE_ELEM: lambda: scratch.update(_KEY, _VAL),
        Cmd.MAP_DELETE_ELEM: lambda: scratch.delete(b"\xff\xff\xff\xff"),
        Cmd.MAP_GET_NEXT_KEY: lambda: scratch.get_next_key(_KEY),
        # Empty path: getname()/user_path_create() give ENOENT, nothing is made.
        Cmd.OBJ_PIN: lambda: obj_pin(scratch.fd, ""),
        Cmd.OBJ_GET: lambda: _close_fd(obj_get("")),
        Cmd.MAP_GET_NEXT_ID: lambda: map_get_next_id(0),
        # IDs start at 1, so ID 0 is ENOENT wherever the command exists.
        Cmd.MAP_GET_FD_BY_ID: lambda: _close_fd(map_get_fd_by_id(0)),
        Cmd.OBJ_GET_INFO_BY_FD: lambda: scratch.info(),
        # Before 5.14 hash maps answer ENOTSUPP here: the command still exists.
        Cmd.MAP_LOOKUP_AND_DELETE_ELEM: lambda: scratch.lookup_and_delete(b"\xff\xff\xff\xff"),
        Cmd.MAP_FREEZE: freeze,
        Cmd.MAP_UPDATE_BATCH: lambda: scratch.update_batch([_KEY], [_VAL]),
        Cmd.MAP_LOOKUP_BATCH: lambda: scratch.lookup_batch(count=4),
        Cmd.MAP_LOOKUP_AND_DELETE_BATCH: lambda: scratch.lookup_and_delete_batch(count=4),
        Cmd.MAP_DELETE_BATCH: lambda: scratch.delete_batch([b"\xff\xff\xff\xff"]),
    }


def probe_command(cmd: Cmd, observed: dict[str, str] | None = None) -> bool:
    """Does the kernel know ``cmd``? (Needs MAP_CREATE for the scratch map.)"""
    obs = observed if observed is not None else {}
    with BpfMap.create(MapType.HASH, 4, 4, 4) as scratch:
        return _try(f"cmd.{cmd.name}", _command_trials(scratch)[cmd], obs)


@functools.lru_cache(maxsize=1)
def probe() -> Features:
    """Probe every command and map type the client knows (cached per process).

    Raises :class:`BpfError` (EPERM/ENOSYS) when bpf(2) itself is unusable.
    """
    observed: dict[str, str] = {}
    cmds: set[Cmd] = set()
    with BpfMap.create(MapType.HASH, 4, 4, 4) as scratch:
        observed["cmd.MAP_CREATE"] = "ok"
        cmds.add(Cmd.MAP_CREATE)
        for cmd, trial in _command_trials(scratch).items():
            if cmd != Cmd.MAP_CREATE and _try(f"cmd.{cmd.name}", trial, observed):
                cmds.add(cmd)
    types = {t for t in MapType if probe_map_type(t, observed)}
    return Features(frozenset(cmds), frozenset(types), observed)
