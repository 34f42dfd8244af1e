"""bpftool-shaped output for :mod:`bpfmap.cli` (bpftool v7.1.0, libbpf 1.1).

Every JSON object built here has the keys, nesting and value encodings that
``bpftool -j`` prints for the same subcommand (src/map.c, src/common.c,
src/feature.c of that release), so the two can be compared field by field.
The plain-text forms follow bpftool's printf formats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TextIO

from .layout import Value

# libbpf 1.1's map type names, indexed by enum bpf_map_type: bpftool prints
# these, and "type N" / a bare number for anything newer than libbpf knows.
MAP_TYPE_NAMES: tuple[str, ...] = (
    "unspec", "hash", "array", "prog_array", "perf_event_array", "percpu_hash",
    "percpu_array", "stack_trace", "cgroup_array", "lru_hash", "lru_percpu_hash",
    "lpm_trie", "array_of_maps", "hash_of_maps", "devmap", "sockmap", "cpumap",
    "xskmap", "sockhash", "cgroup_storage", "reuseport_sockarray",
    "percpu_cgroup_storage", "queue", "stack", "sk_storage", "devmap_hash",
    "struct_ops", "ringbuf", "inode_storage", "task_storage", "bloom_filter",
    "user_ringbuf", "cgrp_storage",
)

JsonValue = None | bool | int | str | list["JsonValue"] | dict[str, "JsonValue"]


def type_name(map_type: int) -> str | None:
    """libbpf's name for ``map_type``, None past the table."""
    return MAP_TYPE_NAMES[map_type] if 0 <= map_type < len(MAP_TYPE_NAMES) else None


def type_number(name: str) -> int | None:
    """The map type bpftool's ``create`` accepts for ``name`` (exact match)."""
    try:
        return MAP_TYPE_NAMES.index(name)
    except ValueError:
        return None


def hex_json(data: bytes) -> list[JsonValue]:
    """print_hex_data_json: one "0x%02hhx" string per byte."""
    return [f"0x{b:02x}" for b in data]


def hex_plain(data: bytes) -> str:
    """fprint_hex with " " as separator: 16 bytes a line, a wider gap after 8."""
    out: list[str] = []
    for i, b in enumerate(data):
        if i:
            out.append("\n" if i % 16 == 0 else "  " if i % 8 == 0 else " ")
        out.append(f"{b:02x}")
    return "".join(out)


@dataclass(frozen=True)
class Geometry:
    """What the entry printers need to know about a map."""

    key_size: int
    value_size: int
    percpu: bool


def entry_json(g: Geometry, key: bytes, value: Value) -> dict[str, JsonValue]:
    """print_entry_json (without BTF): key, then value or per-CPU values."""
    if not g.percpu:
        assert isinstance(value, bytes)
        return {"key": hex_json(key), "value": hex_json(value)}
    assert isinstance(value, list)
    return {
        "key": hex_json(key),
        "values": [{"cpu": i, "value": hex_json(v)} for i, v in enumerate(value)],
    }


def entry_plain(g: Geometry, key: bytes, value: Value) -> str:
    """print_entry_plain (without BTF)."""
    if not g.percpu:
        assert isinstance(value, bytes)
        break_names = g.key_size > 16 or g.value_size > 16
        single_line = g.key_size + g.value_size <= 24 and not break_names
        sep = "\n" if break_names else " "
        text = ""
        if g.key_size:
            text += f"key:{sep}{hex_plain(key)}" + ("  " if single_line else "\n")
        if g.value_size:
            text += f"value:{sep}{hex_plain(value)}"
        return text + "\n"
    assert isinstance(value, list)
    text = f"key:\n{hex_plain(key)}\n" if g.key_size else ""
    if g.value_size:
        sep = "\n" if g.value_size > 16 else " "
        for i, v in enumerate(value):
            text += f"value (CPU {i:02d}):{sep}{hex_plain(v)}\n"
    return text


def entry_error_json(key: bytes, strerror: str) -> dict[str, JsonValue]:
    """print_entry_error in JSON: an element whose lookup failed during a dump."""
    return {"key": hex_json(key), "value": {"error": strerror}}


def entry_error_plain(g: Geometry, key: bytes, message: str) -> str:
    """print_entry_error_msg."""
    break_names = g.key_size > 16 or len(message) > 16
    single_line = g.key_size + len(message) <= 24 and not break_names
    sep = "\n" if break_names else " "
    return (f"key:{sep}{hex_plain(key)}" + ("  " if single_line else "\n")
            + f"value:{sep}{message}\n")


@dataclass(frozen=True)
class ShowInfo:
    """The fields ``map show`` prints (struct bpf_map_info + fdinfo)."""

    id: int
    type: int
    name: str
    flags: int
    key_size: int
    value_size: int
    max_entries: int
    memlock: int | None
    frozen: int
    btf_id: int


def show_json(s: ShowInfo) -> dict[str, JsonValue]:
    """show_map_close_json, in bpftool's key order."""
    obj: dict[str, JsonValue] = {"id": s.id}
    name = type_name(s.type)
    obj["type"] = name if name is not None else s.type
    if s.name:
        obj["name"] = s.name
    # bpftool prints map_flags with "%d"
    obj["flags"] = s.flags - (1 << 32) if s.flags >= 1 << 31 else s.flags
    obj["bytes_key"] = s.key_size
    obj["bytes_value"] = s.value_size
    obj["max_entries"] = s.max_entries
    if s.memlock is not None:
        obj["bytes_memlock"] = s.memlock
    obj["frozen"] = s.frozen
    if s.btf_id:
        obj["btf_id"] = s.btf_id
    return obj


def show_plain(s: ShowInfo) -> str:
    """show_map_close_plain."""
    name = type_name(s.type)
    text = f"{s.id}: " + (f"{name}  " if name is not None else f"type {s.type}  ")
    if s.name:
        text += f"name {s.name}  "
    text += f"flags 0x{s.flags:x}\n"
    text += f"\tkey {s.key_size}B  value {s.value_size}B  max_entries {s.max_entries}"
    if s.memlock is not None:
        text += f"  memlock {s.memlock}B"
    if s.btf_id or s.frozen:
        text += "\n\t"
    if s.btf_id:
        text += f"btf_id {s.btf_id}"
    if s.frozen:
        text += ("  " if s.btf_id else "") + "frozen"
    return text + "\n"


class Output:
    """Where a command's results and errors go, in bpftool's JSON or text form."""

    def __init__(self, as_json: bool, pretty: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.json = as_json
        self.pretty = pretty
        self.stdout = stdout
        self.stderr = stderr

    def emit(self, obj: JsonValue) -> None:
        """One JSON document on stdout (compact as bpftool's, or indented for -p)."""
        if self.pretty:
            text = json.dumps(obj, indent=4)
        else:
            text = json.dumps(obj, separators=(",", ":"))
        self.stdout.write(text + "\n")

    def done(self) -> None:
        """A command without output succeeded: bpftool -j prints null."""
        if self.json:
            self.emit(None)

    def text(self, text: str) -> None:
        self.stdout.write(text)

    def error(self, message: str, errname: str | None) -> None:
        """bpftool's p_err, plus the errno name (a key of its own in JSON)."""
        if self.json:
            obj: dict[str, JsonValue] = {"error": message}
            if errname is not None:
                obj["errno"] = errname
            self.emit(obj)
        else:
            suffix = f" ({errname})" if errname is not None else ""
            self.stderr.write(f"Error: {message}{suffix}\n")

    def note(self, message: str) -> None:
        """An error line on stderr only (when stdout already got bpftool's answer)."""
        self.stderr.write(f"Error: {message}\n")
