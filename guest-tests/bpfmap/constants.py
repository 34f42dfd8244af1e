"""Numbers from include/uapi/linux/bpf.h that the client needs.

Only the values used by the map API are listed; names follow the kernel's
enums without the ``BPF_`` prefix so ``Cmd.MAP_CREATE`` reads like the source.
"""

from __future__ import annotations

import enum
import platform

# __NR_bpf differs per architecture; the lab's guests are x86-64, but keeping
# the table lets the package run on the other hosts people actually have.
_NR_BPF_BY_MACHINE: dict[str, int] = {
    "x86_64": 321,
    "i386": 357,
    "i686": 357,
    "aarch64": 280,
    "arm64": 280,
    "riscv64": 280,
    "loongarch64": 280,
    "armv7l": 386,
    "s390x": 351,
    "ppc64le": 361,
    "ppc64": 361,
}


def nr_bpf(machine: str | None = None) -> int:
    """Return the bpf(2) syscall number for ``machine`` (default: this one)."""
    name = machine if machine is not None else platform.machine()
    try:
        return _NR_BPF_BY_MACHINE[name]
    except KeyError:
        raise OSError(f"bpf(2) syscall number unknown for machine {name!r}") from None


NR_BPF: int = nr_bpf()

BPF_OBJ_NAME_LEN: int = 16


class Cmd(enum.IntEnum):
    """enum bpf_cmd (map-related subset)."""

    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    OBJ_PIN = 6
    OBJ_GET = 7
    MAP_GET_NEXT_ID = 12
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    MAP_LOOKUP_AND_DELETE_ELEM = 21
    MAP_FREEZE = 22
    MAP_LOOKUP_BATCH = 24
    MAP_LOOKUP_AND_DELETE_BATCH = 25
    MAP_UPDATE_BATCH = 26
    MAP_DELETE_BATCH = 27


class MapType(enum.IntEnum):
    """enum bpf_map_type (the types this lab tests)."""

    HASH = 1
    ARRAY = 2
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    ARRAY_OF_MAPS = 12
    HASH_OF_MAPS = 13
    QUEUE = 22
    STACK = 23
    BLOOM_FILTER = 30


# Per-CPU maps exchange one value slot per possible CPU with user space.
PERCPU_MAP_TYPES: frozenset[int] = frozenset(
    {MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH}
)


class UpdateFlag(enum.IntFlag):
    """Flags of BPF_MAP_UPDATE_ELEM (and elem_flags of the batch commands)."""

    ANY = 0
    NOEXIST = 1
    EXIST = 2
    F_LOCK = 4


class MapFlag(enum.IntFlag):
    """map_flags of BPF_MAP_CREATE; RDONLY/WRONLY double as file/open flags."""

    NONE = 0
    NO_PREALLOC = 1 << 0
    NO_COMMON_LRU = 1 << 1
    NUMA_NODE = 1 << 2
    RDONLY = 1 << 3
    WRONLY = 1 << 4
    ZERO_SEED = 1 << 6
    RDONLY_PROG = 1 << 7
    WRONLY_PROG = 1 << 8
    MMAPABLE = 1 << 10
    INNER_MAP = 1 << 12
    PATH_FD = 1 << 14


class FileFlag(enum.IntFlag):
    """file_flags of OBJ_PIN/OBJ_GET and open_flags of MAP_GET_FD_BY_ID."""

    NONE = 0
    RDONLY = int(MapFlag.RDONLY)
    WRONLY = int(MapFlag.WRONLY)
    PATH_FD = int(MapFlag.PATH_FD)
