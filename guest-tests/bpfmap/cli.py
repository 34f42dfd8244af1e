"""``python3 -m bpfmap``: bpftool's ``map`` and ``feature probe`` grammar on this client.

    python3 -m bpfmap [-j|-p] map create FILE type TYPE key N value N entries N name NAME [flags N]
    python3 -m bpfmap [-j|-p] map { update | lookup | delete | getnext | peek | push | pop } MAP ...
    python3 -m bpfmap [-j|-p] map { dump | show | pin | freeze } MAP ...
    python3 -m bpfmap [-j|-p] feature probe [kernel]

MAP is ``id ID`` or ``pinned FILE``; bytes are written as bpftool writes them
(``key 1 0 0 0``, ``key hex 01 00 00 00``); keywords may be abbreviated to any
prefix, resolved in bpftool's order. ``-j`` prints what ``bpftool -j`` prints
(src/map.c of bpftool v7.1.0), with one addition: error objects carry the
errno name under ``"errno"``.

Exit status: 0 on success, 1 when a system call failed (the errno name is
printed), 2 for wrong arguments (an error and the usage line are printed).
A lookup, peek or pop that finds nothing prints what bpftool prints (``null``
with -j, "Not found" without) and the errno on stderr. As with libbpf, a map
name is cut to 15 bytes.

Deliberately stricter than bpftool: a byte must be 0..255 and a number must
fit in 32 bits (bpftool truncates silently), and nothing is mounted: pinning
into a directory that is not on a bpffs fails instead of mounting one there.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import NoReturn, TextIO

from . import attrs
from . import cliout as fmt
from . import syscall as _sc
from .constants import BPF_OBJ_NAME_LEN, Cmd, MapType, UpdateFlag
from .errors import BpfError, errno_name
from .features import probe
from .info import INFO_BUF_SIZE, decode_map_info
from .layout import Value
from .maps import BpfMap
from .objects import iter_map_ids, map_get_fd_by_id, obj_get

PROG = "python3 -m bpfmap"
MAP_SPEC = "MAP := { id MAP_ID | pinned FILE }"

USAGE: dict[str, str] = {
    "show": "map { show | list } [MAP]",
    "create": ("map create FILE type TYPE key KEY_SIZE value VALUE_SIZE entries MAX_ENTRIES "
               "name NAME [flags FLAGS] [inner_map MAP]"),
    "dump": "map dump MAP",
    "update": "map update MAP [key DATA] [value DATA] [UPDATE_FLAGS]",
    "lookup": "map lookup MAP [key DATA]",
    "getnext": "map getnext MAP [key DATA]",
    "delete": "map delete MAP key DATA",
    "pin": "map pin MAP FILE",
    "peek": "map peek MAP",
    "push": "map push MAP value DATA [UPDATE_FLAGS]",
    "pop": "map pop MAP [key DATA]",
    "freeze": "map freeze MAP",
    "probe": "feature probe [kernel]",
    "main": "[-j|--json] [-p|--pretty] { map | feature | help } COMMAND ...",
}
HELP_TAIL = (
    f"       {MAP_SPEC}\n"
    "       DATA := { [hex] BYTES }\n"
    "       UPDATE_FLAGS := { any | exist | noexist }\n"
    + textwrap.fill(f"TYPE := {{ {' | '.join(fmt.MAP_TYPE_NAMES[1:])} }}", width=88,
                    initial_indent=" " * 7, subsequent_indent=" " * 16)
    + "\n"
)

# bpftool's command tables, in its order: a prefix resolves to the first match.
OBJECTS = ("help", "batch", "prog", "map", "link", "cgroup", "perf", "net", "feature",
           "btf", "gen", "struct_ops", "iter", "version")
MAP_COMMANDS = ("show", "list", "help", "dump", "update", "lookup", "getnext", "delete",
                "pin", "event_pipe", "create", "peek", "push", "enqueue", "pop", "dequeue",
                "freeze")
FEATURE_COMMANDS = ("probe", "list_builtins", "help")
# A failed lookup of these means "no entry" to bpftool's dump, which skips it.
_PROG_ARRAY = 3  # not in MapType: this client makes no programs
_FD_VALUE_TYPES = frozenset({MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, _PROG_ARRAY})
_BTF_ID_OFFSET = 64  # struct bpf_map_info.btf_id


class UsageError(Exception):
    """Wrong arguments: exit 2 with the command's usage line."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


class Failure(Exception):
    """The command failed: exit 1; ``err`` is the errno when a system call failed."""

    def __init__(self, message: str, err: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.err = err


def syscall_failure(context: str, e: OSError) -> Failure:
    """bpftool's "<context>: <strerror>" for a failed call."""
    err = e.errno if e.errno is not None else 0
    return Failure(f"{context}: {os.strerror(err)}", err)


def is_prefix(word: str, full: str) -> bool:
    """bpftool's is_prefix(): ``word`` abbreviates ``full`` (never when empty)."""
    return bool(word) and full.startswith(word)


def resolve(word: str, choices: Sequence[str]) -> str | None:
    """The first of ``choices`` that ``word`` abbreviates."""
    return next((c for c in choices if is_prefix(word, c)), None)


_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]+)")
_AUTO_HEX = re.compile(r"0[xX]([0-9a-fA-F]+)")
_OCT = re.compile(r"0[0-7]*")
_DEC = re.compile(r"[1-9][0-9]*")


def parse_uint(text: str, base: int = 0) -> int | None:
    """strtoul(text, base) for base 0 or 16, but whole-word and unsigned only."""
    if base == 16:
        m = _HEX.fullmatch(text)
        return int(m.group(1), 16) if m else None
    if m := _AUTO_HEX.fullmatch(text):
        return int(m.group(1), 16)
    if _OCT.fullmatch(text):
        return int(text, 8)
    if _DEC.fullmatch(text):
        return int(text, 10)
    return None


class Args:
    """The words of one command, consumed left to right."""

    def __init__(self, words: Sequence[str], usage: str) -> None:
        self._words = list(words)
        self._pos = 0
        self.usage = usage

    def more(self) -> bool:
        return self._pos < len(self._words)

    def peek(self) -> str | None:
        return self._words[self._pos] if self.more() else None

    def take(self, what: str) -> str:
        if not self.more():
            self.fail(f"missing {what}")
        word = self._words[self._pos]
        self._pos += 1
        return word

    def keyword(self, choices: Sequence[str]) -> str | None:
        """Consume the next word if it abbreviates one of ``choices``."""
        word = self.peek()
        found = resolve(word, choices) if word is not None else None
        if found is not None:
            self._pos += 1
        return found

    def u32(self, what: str) -> int:
        word = self.take(what)
        value = parse_uint(word)
        if value is None or value > 0xFFFFFFFF:
            self.fail(f"can't parse {word} as {what}")
        return value

    def end(self) -> None:
        if self.more():
            self.fail(f"what is '{self.peek()}'?")

    def fail(self, message: str) -> NoReturn:
        raise UsageError(message, self.usage)


# -- map handles and element arguments ----------------------------------------


def _fd_kind(fd: int) -> str:
    """What bpftool's get_fd_type() sees: the anon inode name of ``fd``."""
    try:
        link = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "unknown"
    return link.removeprefix("anon_inode:bpf-") if link.startswith("anon_inode:bpf-") else link


def open_map(args: Args) -> BpfMap:
    """MAP := { id MAP_ID | pinned FILE }, opened (a BpfMap: use it in ``with``)."""
    kind = args.keyword(("id", "pinned"))
    if kind is None:
        args.fail(f"expected 'id' or 'pinned', got: '{args.peek()}'?")
    if kind == "id":
        word = args.take("map ID")
        map_id = parse_uint(word)
        if map_id is None or map_id > 0xFFFFFFFF:
            args.fail(f"can't parse {word} as ID")
        try:
            fd = map_get_fd_by_id(map_id)
        except BpfError as e:
            raise syscall_failure(f"get map by id ({map_id})", e) from None
    else:
        path = args.take("FILE")
        try:
            fd = obj_get(path)
        except BpfError as e:
            raise syscall_failure(f"bpf obj get ({path})", e) from None
        kind_name = _fd_kind(fd)
        if kind_name != "map":
            os.close(fd)
            raise Failure(f"incorrect object type: {kind_name}", None)
    try:
        return BpfMap.from_fd(fd)  # owns fd from here, even on failure
    except BpfError as e:
        raise syscall_failure("can't get map info", e) from None


def parse_bytes(args: Args, name: str, size: int) -> bytes:
    """DATA := { [hex] BYTES }: exactly ``size`` bytes."""
    base = 0
    word = args.peek()
    if word is not None and is_prefix(word, "hex"):
        base = 16
        args.take("hex")
    out = bytearray()
    while len(out) < size and args.more():
        word = args.take("byte")
        value = parse_uint(word, base)
        if value is None:
            args.fail(f"error parsing byte: {word}")
        if value > 0xFF:
            args.fail(f"byte out of range (0..255): {word}")
        out.append(value)
    if len(out) != size:
        args.fail(f"{name} expected {size} bytes got {len(out)}")
    return bytes(out)


_FLAG_WORDS = {"any": UpdateFlag.ANY, "noexist": UpdateFlag.NOEXIST, "exist": UpdateFlag.EXIST}


def parse_elem(
    args: Args, m: BpfMap, want_key: bool, want_value: bool, allow_flags: bool
) -> tuple[bytes | None, bytes | None, int]:
    """bpftool's parse_elem(): key, value and an update flag, in any order."""
    key: bytes | None = None
    value: bytes | None = None
    flags: int | None = None
    while args.more():
        word = args.peek() or ""
        kw = args.keyword(("key", "value", "any", "noexist", "exist"))
        if kw == "key":
            if not want_key or key is not None:
                args.fail("duplicate key" if key is not None else "unnecessary key")
            key = parse_bytes(args, "key", m.key_size)
        elif kw == "value":
            if not want_value or value is not None:
                args.fail("duplicate value" if value is not None else "unnecessary value")
            value = parse_bytes(args, "value", m.value_size)
        elif kw is not None:
            if not allow_flags or flags is not None:
                args.fail(f"flags specified multiple times: {word}")
            flags = int(_FLAG_WORDS[kw])
        else:
            args.fail(f"expected key or value, got: {word}")
    if want_key and key is None:
        args.fail("did not find key")
    if want_value and value is None:
        args.fail("did not find value")
    return key, value, UpdateFlag.ANY if flags is None else flags


def geometry(m: BpfMap) -> fmt.Geometry:
    return fmt.Geometry(m.key_size, m.value_size, m.is_percpu)


def print_entry(out: fmt.Output, m: BpfMap, key: bytes | None, value: Value) -> None:
    g = geometry(m)
    if out.json:
        out.emit(fmt.entry_json(g, key or b"", value))
    else:
        out.text(fmt.entry_plain(g, key or b"", value))


# -- map commands ---------------------------------------------------------------


def fdinfo(fd: int) -> dict[str, str]:
    """/proc/self/fdinfo/FD as a dict (where bpftool reads memlock and frozen)."""
    fields: dict[str, str] = {}
    with open(f"/proc/self/fdinfo/{fd}", encoding="ascii", errors="replace") as f:
        for line in f:
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip()] = value.strip()
    return fields


def show_info(fd: int) -> fmt.ShowInfo:
    """bpf_map_info (with btf_id, which MapInfo leaves out) and the fdinfo fields."""
    buf = ctypes.create_string_buffer(INFO_BUF_SIZE)
    attr = _sc.attr_buffer(attrs.pack_info(fd, INFO_BUF_SIZE, ctypes.addressof(buf)))
    try:
        _sc.bpf(Cmd.OBJ_GET_INFO_BY_FD, attr)
    except BpfError as e:
        raise syscall_failure("can't get map info", e) from None
    (info_len,) = attrs.U32.unpack_from(attr, attrs.INFO_LEN_OFFSET)
    info = decode_map_info(buf.raw, info_len)
    btf_id = attrs.U32.unpack_from(buf, _BTF_ID_OFFSET)[0] if info_len >= _BTF_ID_OFFSET + 4 else 0
    extra = fdinfo(fd)
    memlock = extra.get("memlock")
    return fmt.ShowInfo(
        id=info.id, type=info.type, name=info.name, flags=info.map_flags,
        key_size=info.key_size, value_size=info.value_size, max_entries=info.max_entries,
        memlock=int(memlock) if memlock is not None else None,
        frozen=int(extra.get("frozen", "0")), btf_id=btf_id,
    )


def cmd_show(args: Args, out: fmt.Output) -> int:
    if args.more():
        with open_map(args) as m:
            args.end()
            s = show_info(m.fd)
        if out.json:
            out.emit(fmt.show_json(s))
        else:
            out.text(fmt.show_plain(s))
        return 0
    shown: list[fmt.ShowInfo] = []
    try:
        for map_id in iter_map_ids():
            try:
                fd = map_get_fd_by_id(map_id)
            except BpfError as e:
                if e.errno == _errno.ENOENT:  # gone since MAP_GET_NEXT_ID
                    continue
                raise syscall_failure(f"can't get map by id ({map_id})", e) from None
            try:
                shown.append(show_info(fd))
            finally:
                os.close(fd)
    except BpfError as e:
        raise syscall_failure("can't get next map", e) from None
    if out.json:
        out.emit([fmt.show_json(s) for s in shown])
    else:
        out.text("".join(fmt.show_plain(s) for s in shown))
    return 0


def cmd_dump(args: Args, out: fmt.Output) -> int:
    """GET_NEXT_KEY + LOOKUP_ELEM per element, as bpftool's map_dump()."""
    with open_map(args) as m:
        args.end()
        g = geometry(m)
        entries: list[fmt.JsonValue] = []
        lines: list[str] = []
        found = 0
        prev: bytes | None = None
        # A walk yields at most max_entries keys; more means GET_NEXT_KEY
        # restarted under concurrent deletes, and bpftool would loop forever.
        for _ in range(m.max_entries + 1):
            try:
                key = m.get_next_key(prev)
            except BpfError as e:
                if e.errno == _errno.ENOENT:
                    break
                raise syscall_failure("can't get next key", e) from None
            try:
                value = m.lookup(key)
            except BpfError as e:
                if not (m.map_type in _FD_VALUE_TYPES and e.errno == _errno.ENOENT):
                    err = e.errno or 0
                    entries.append(fmt.entry_error_json(key, os.strerror(err)))
                    msg = "<no entry>" if err == _errno.ENOENT else os.strerror(err)
                    lines.append(fmt.entry_error_plain(g, key, msg))
            else:
                found += 1
                entries.append(fmt.entry_json(g, key, value))
                lines.append(fmt.entry_plain(g, key, value))
            prev = key
        else:
            raise Failure(f"dump passed max_entries ({m.max_entries}) keys: the walk restarted", None)
    if out.json:
        out.emit(entries)
    else:
        out.text("".join(lines) + f"Found {found} element{'' if found == 1 else 's'}\n")
    return 0


def _read_elem(
    args: Args,
    out: fmt.Output,
    read: Callable[[BpfMap, bytes | None], Value],
    failed: str,
    not_found: str,
    not_found_text: Callable[[bytes | None], str],
) -> int:
    """lookup/peek/pop: print the element ``read`` returns. ENOENT prints
    bpftool's null (or ``not_found_text(key)``) and the errno, and exits 1."""
    with open_map(args) as m:
        key, _, _ = parse_elem(args, m, want_key=m.key_size > 0, want_value=False, allow_flags=False)
        try:
            value = read(m, key)
        except BpfError as e:
            if e.errno != _errno.ENOENT:
                raise syscall_failure(failed, e) from None
            if out.json:
                out.emit(None)
            else:
                out.text(not_found_text(key))
            out.note(f"{not_found}: {os.strerror(_errno.ENOENT)} (ENOENT)")
            return 1
        print_entry(out, m, key, value)
    return 0


def cmd_lookup(args: Args, out: fmt.Output) -> int:
    return _read_elem(
        args, out, BpfMap.lookup, "lookup failed", "lookup failed",
        lambda key: f"key:\n{fmt.hex_plain(key or b'')}\n\nNot found\n",
    )


def cmd_update(args: Args, out: fmt.Output) -> int:
    with open_map(args) as m:
        if m.map_type in _FD_VALUE_TYPES:
            args.fail("values of map-in-map and prog array maps (fds) are not supported")
        key, value, flags = parse_elem(
            args, m, want_key=m.key_size > 0, want_value=m.value_size > 0, allow_flags=True
        )
        raw = value if value is not None else b""
        # bpftool writes the one value given into every CPU's slot.
        new: bytes | list[bytes] = [raw] * m.layout.slots if m.is_percpu else raw
        try:
            m.update(key, new, flags)
        except BpfError as e:
            raise syscall_failure("update failed", e) from None
    out.done()
    return 0


def cmd_delete(args: Args, out: fmt.Output) -> int:
    with open_map(args) as m:
        key, _, _ = parse_elem(args, m, want_key=m.key_size > 0, want_value=False, allow_flags=False)
        try:
            m.delete(key)
        except BpfError as e:
            raise syscall_failure("delete failed", e) from None
    out.done()
    return 0


def cmd_getnext(args: Args, out: fmt.Output) -> int:
    with open_map(args) as m:
        key: bytes | None = None
        if args.more():
            key, _, _ = parse_elem(args, m, want_key=True, want_value=False, allow_flags=False)
        try:
            nxt = m.get_next_key(key)
        except BpfError as e:
            raise syscall_failure("can't get next key", e) from None
    if out.json:
        out.emit({"key": fmt.hex_json(key) if key is not None else None,
                  "next_key": fmt.hex_json(nxt)})
    else:
        head = f"key:\n{fmt.hex_plain(key)}\n" if key is not None else "key: None\n"
        out.text(f"{head}next key:\n{fmt.hex_plain(nxt)}\n")
    return 0


def cmd_pop(args: Args, out: fmt.Output) -> int:
    return _read_elem(
        args, out, BpfMap.lookup_and_delete, "pop failed", "pop failed (empty map)", lambda key: ""
    )


def cmd_pin(args: Args, out: fmt.Output) -> int:
    with open_map(args) as m:
        path = args.take("FILE")
        args.end()
        try:
            m.pin(path)
        except BpfError as e:
            raise syscall_failure(f"can't pin the object ({path})", e) from None
    out.done()
    return 0


def cmd_freeze(args: Args, out: fmt.Output) -> int:
    with open_map(args) as m:
        args.end()
        try:
            m.freeze()
        except BpfError as e:
            raise syscall_failure("failed to freeze map", e) from None
    out.done()
    return 0


def cmd_create(args: Args, out: fmt.Output) -> int:
    path = args.take("FILE")
    map_type: int | None = None
    name: str | None = None
    sizes: dict[str, int] = {}
    inner: BpfMap | None = None
    try:
        while args.more():
            word = args.peek() or ""
            kw = args.keyword(("type", "name", "key", "value", "entries", "flags", "dev", "inner_map"))
            if kw == "type":
                if map_type is not None:
                    args.fail("map type already specified")
                type_word = args.take("TYPE")
                map_type = fmt.type_number(type_word)
                if map_type is None:
                    args.fail(f"unrecognized map type: {type_word}")
            elif kw == "name":
                name = args.take("NAME")
            elif kw in ("key", "value", "entries", "flags"):
                what = {"key": "key size", "value": "value size",
                        "entries": "max entries", "flags": "flags"}[kw]
                if kw in sizes:
                    args.fail(f"{what} already specified")
                sizes[kw] = args.u32(what)
            elif kw == "inner_map":
                if inner is not None:
                    args.fail("inner map already specified")
                inner = open_map(args)
            elif kw == "dev":
                args.fail("offloaded maps (dev NAME) are not supported")
            else:
                args.fail(f"unknown arg {word}")
        if name is None:
            args.fail("map name not specified")
        # libbpf copies the name with strlcpy into map_name[16]: at most 15 bytes.
        short = name.encode()[: BPF_OBJ_NAME_LEN - 1].decode(errors="ignore")
        try:
            m = BpfMap.create(
                map_type or 0, sizes.get("key", 0), sizes.get("value", 0),
                sizes.get("entries", 0), sizes.get("flags", 0), name=short,
                inner_map_fd=inner.fd if inner is not None else 0,
            )
        except BpfError as e:
            raise syscall_failure("map create failed", e) from None
        with m:
            try:
                m.pin(path)
            except BpfError as e:
                raise syscall_failure(f"can't pin the object ({path})", e) from None
    finally:
        if inner is not None:
            inner.close()
    out.done()
    return 0


def cmd_unsupported(args: Args, out: fmt.Output) -> int:
    args.fail("this command is not supported by bpfmap")


def cmd_map_help(args: Args, out: fmt.Output) -> int:
    if out.json:
        out.emit(None)
        return 0
    lines = [USAGE[c] for c in ("show", "create", "dump", "update", "lookup", "getnext",
                                "delete", "pin", "peek", "push", "pop", "freeze")]
    out.text("Usage: " + "\n       ".join(f"{PROG} {line}" for line in lines)
             + "\n\n" + HELP_TAIL)
    return 0


MAP_HANDLERS: dict[str, tuple[Callable[[Args, fmt.Output], int], str]] = {
    "show": (cmd_show, "show"), "list": (cmd_show, "show"), "help": (cmd_map_help, "show"),
    "dump": (cmd_dump, "dump"), "update": (cmd_update, "update"),
    "lookup": (cmd_lookup, "lookup"), "getnext": (cmd_getnext, "getnext"),
    "delete": (cmd_delete, "delete"), "pin": (cmd_pin, "pin"),
    "event_pipe": (cmd_unsupported, "show"), "create": (cmd_create, "create"),
    "peek": (cmd_lookup, "peek"), "push": (cmd_update, "push"), "enqueue": (cmd_update, "push"),
    "pop": (cmd_pop, "pop"), "dequeue": (cmd_pop, "pop"), "freeze": (cmd_freeze, "freeze"),
}


# -- feature probe ----------------------------------------------------------------


def cmd_probe(args: Args, out: fmt.Output) -> int:
    """The syscall_config and map_types sections of ``bpftool feature probe``."""
    word = args.peek()
    if word is not None and args.keyword(("kernel",)) is None:
        args.fail(f"expected no more arguments or 'kernel', got: '{word}'?")
    args.end()
    try:
        feats = probe()
        have_syscall = True
        known = feats.map_types
    except BpfError as e:
        if e.errno != _errno.ENOSYS:
            raise syscall_failure("probing the bpf() syscall", e) from None
        have_syscall, known = False, frozenset()
    types = sorted(MapType, key=int)
    if out.json:
        out.emit({
            "syscall_config": {"have_bpf_syscall": have_syscall},
            "map_types": {f"have_{fmt.type_name(t)}_map_type": t in known for t in types},
        })
    else:
        avail = {True: "is available", False: "is NOT available"}
        text = "Scanning system call availability...\n"
        text += f"bpf() syscall {avail[have_syscall]}\n\nScanning eBPF map types...\n"
        text += "".join(f"eBPF map_type {fmt.type_name(t)} {avail[t in known]}\n" for t in types)
        out.text(text + "\n")
    return 0


# -- entry point ------------------------------------------------------------------


def split_options(argv: Sequence[str]) -> tuple[bool, bool, bool, list[str], str | None]:
    """(-j, -p, -h, the other words, the first unknown option). Options may
    appear anywhere before ``--``, as bpftool's getopt_long permutes them."""
    as_json = pretty = want_help = False
    words: list[str] = []
    unknown: str | None = None
    options_done = False
    for word in argv:
        if options_done or word == "-" or not word.startswith("-"):
            words.append(word)
        elif word == "--":
            options_done = True
        elif word in ("--json", "--pretty", "--help"):
            as_json = as_json or word in ("--json", "--pretty")
            pretty = pretty or word == "--pretty"
            want_help = want_help or word == "--help"
        elif word.startswith("--") or any(c not in "jph" for c in word[1:]):
            unknown = unknown or word
        else:
            as_json = as_json or "j" in word or "p" in word
            pretty = pretty or "p" in word
            want_help = want_help or "h" in word
    return as_json, pretty, want_help, words, unknown


def dispatch(words: list[str], out: fmt.Output) -> int:
    if not words:
        raise UsageError("missing OBJECT", USAGE["main"])
    obj = resolve(words[0], OBJECTS)
    if obj == "help":
        return cmd_map_help(Args([], USAGE["main"]), out)
    if obj == "map":
        rest = words[1:] or ["show"]  # as bpftool: a bare "map" lists maps
        cmd = resolve(rest[0], MAP_COMMANDS)
        if cmd is None:
            raise UsageError(f"unknown map command '{rest[0]}'", USAGE["main"])
        handler, usage = MAP_HANDLERS[cmd]
        return handler(Args(rest[1:], USAGE[usage]), out)
    if obj == "feature":
        rest = words[1:] or ["probe"]
        cmd = resolve(rest[0], FEATURE_COMMANDS)
        if cmd == "probe":
            return cmd_probe(Args(rest[1:], USAGE["probe"]), out)
        if cmd == "help":
            if out.json:
                out.emit(None)
            else:
                out.text(f"Usage: {PROG} {USAGE['probe']}\n")
            return 0
        raise UsageError(f"unsupported feature command '{rest[0]}'", USAGE["probe"])
    what = f"object '{obj}' is not supported" if obj else f"unknown object '{words[0]}'"
    raise UsageError(what, USAGE["main"])


def main(
    argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run one command; returns the exit status (0, 1 or 2)."""
    out_stream = stdout if stdout is not None else sys.stdout
    err_stream = stderr if stderr is not None else sys.stderr
    words_in = list(sys.argv[1:] if argv is None else argv)
    as_json, pretty, want_help, words, unknown = split_options(words_in)
    out = fmt.Output(as_json, pretty, out_stream, err_stream)
    try:
        if unknown is not None:
            raise UsageError(f"unknown option {unknown}", USAGE["main"])
        if want_help:
            return cmd_map_help(Args([], USAGE["main"]), out)
        return dispatch(words, out)
    except UsageError as e:
        out.error(e.message, None)
        err_stream.write(f"Usage: {PROG} {e.usage}\n")
        return 2
    except Failure as e:
        out.error(e.message, errno_name(e.err) if e.err is not None else None)
        return 1
