"""bpfmap: a standard-library (ctypes) client for the bpf(2) map commands.

Modules, one job each:
  constants  command / map type / flag numbers      errors   BpfError, errno names
  syscall    the raw bpf(2) call (bpf_raw for ABI tests)
  attrs      union bpf_attr packing per command      layout   value buffers (per-CPU)
  cpus       possible CPUs                           info     struct bpf_map_info
  objects    pin/get, map IDs                        batch    *_BATCH at ABI level
  maps       BpfMap                                  dump     walk / walk_batch
  features   feature probe by trial                  bpffs    private bpffs mounts
"""

from __future__ import annotations

from .batch import BatchResult
from .constants import BPF_OBJ_NAME_LEN, Cmd, FileFlag, MapFlag, MapType, UpdateFlag
from .cpus import num_possible_cpus, parse_cpu_list, possible_cpus
from .errors import EBADFD, ENOTSUPP, BpfError, command_name, errno_name
from .info import MapInfo, map_info
from .layout import Value, ValueLayout
from .maps import BpfMap, create_map
from .objects import iter_map_ids, map_get_fd_by_id, map_get_next_id, obj_get, obj_pin
from .features import Features, probe
from .syscall import bpf, bpf_addr, bpf_raw

__all__ = [
    "BPF_OBJ_NAME_LEN",
    "EBADFD",
    "ENOTSUPP",
    "BatchResult",
    "BpfError",
    "BpfMap",
    "Cmd",
    "Features",
    "FileFlag",
    "MapFlag",
    "MapInfo",
    "MapType",
    "UpdateFlag",
    "Value",
    "ValueLayout",
    "bpf",
    "bpf_addr",
    "bpf_raw",
    "command_name",
    "create_map",
    "errno_name",
    "iter_map_ids",
    "map_get_fd_by_id",
    "map_get_next_id",
    "map_info",
    "num_possible_cpus",
    "obj_get",
    "obj_pin",
    "parse_cpu_list",
    "possible_cpus",
    "probe",
]
