"""`make bench`, client part: the Python bpf(2) client against the same loops in C.

Run on the host kernel as root: `python -m lab.bench.client [--entries N] [--batch N] [--rounds N]`.
Four operations on a fresh BPF_MAP_TYPE_HASH (u32 key, u64 value) of N entries:
update of every key, lookup of every key, a GET_NEXT_KEY walk over the map and
a LOOKUP_BATCH walk. The C side is lab/bench_client.c, compiled here with the
host's gcc -O2 into a temporary directory. C and Python rounds alternate (the
host is shared, so both see the same disturbances) and each side keeps its
best round. The ratio is C's ops/s over Python's: how many times longer the
client takes per element. Aims: <= 3x for single-element calls, <= 1.5x for batch.
"""
from __future__ import annotations

import argparse
import errno
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.paths import GUEST_TESTS_DIR

C_SOURCE = Path(__file__).with_name("client.c")
GUEST_TESTS = GUEST_TESTS_DIR
OPERATIONS = ("update", "lookup", "get_next_key", "lookup_batch")
LABELS = {"update": "update", "lookup": "lookup", "get_next_key": "get_next_key walk",
          "lookup_batch": "batch lookup"}
AIMS = {"update": 3.0, "lookup": 3.0, "get_next_key": 3.0, "lookup_batch": 1.5}


class BenchError(Exception):
    """The benchmark cannot run here (reason in the message)."""


@dataclass(frozen=True)
class Figure:
    operation: str
    python_ops: float
    c_ops: float

    @property
    def ratio(self) -> float:
        """Python's time per element over C's."""
        return self.c_ops / self.python_ops


def format_table(figures: list[Figure]) -> list[str]:
    lines = [f"{'operation':<18} {'python ops/s':>13} {'C ops/s':>13} {'ratio':>7}   aim"]
    for f in figures:
        aim = AIMS[f.operation]
        verdict = "met" if f.ratio <= aim else "MISSED"
        lines.append(f"{LABELS[f.operation]:<18} {f.python_ops:>13,.0f} {f.c_ops:>13,.0f} "
                     f"{f.ratio:>6.2f}x   <= {aim:g}x {verdict}")
    return lines


def compile_c(workdir: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BenchError("gcc is not installed: the C side cannot be built")
    binary = workdir / "bench_client"
    proc = subprocess.run([gcc, "-O2", "-Wall", "-o", str(binary), str(C_SOURCE)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"gcc failed:\n{proc.stderr}")
    return binary


def run_c(binary: Path, entries: int, batch: int) -> dict[str, float]:
    """One C round: seconds per operation over all ``entries`` elements."""
    proc = subprocess.run([str(binary), str(entries), str(batch), "1"],
                          capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise BenchError(f"the C benchmark failed: {proc.stderr.strip()}")
    seconds: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        op, count, secs = line.split()
        if int(count) != entries:
            raise BenchError(f"C reported {count} elements for {op}, expected {entries}")
        seconds[op] = float(secs)
    return seconds


def run_python(entries: int, batch: int) -> dict[str, float]:
    """One Python round with the client's public API, mirroring the C loops."""
    if str(GUEST_TESTS) not in sys.path:
        sys.path.insert(0, str(GUEST_TESTS))
    from bpfmap import BpfMap, MapType  # the guest client, standard library only

    u32, u64 = struct.Struct("<I"), struct.Struct("<Q")
    # Keys and values exist before the clock starts, as they do in C's registers.
    pairs = [(u32.pack(i), u64.pack(i)) for i in range(entries)]
    keys = [key for key, _ in pairs]
    seconds: dict[str, float] = {}
    with BpfMap.create(MapType.HASH, 4, 8, entries) as m:
        update, lookup = m.update, m.lookup
        t0 = time.perf_counter()
        for key, value in pairs:
            update(key, value)
        seconds["update"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        for key in keys:
            lookup(key)
        seconds["lookup"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        walked = sum(1 for _ in m.keys())
        seconds["get_next_key"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        seen, cursor = 0, None
        while True:
            res = m.lookup_batch(cursor, batch)
            seen += res.count
            if res.done:
                break
            cursor = res.cursor
        seconds["lookup_batch"] = time.perf_counter() - t0

        # Checked after the clock, like C's checksum: the loops did the work.
        if walked != entries or seen != entries:
            raise BenchError(f"walk saw {walked}, batch {seen} of {entries} elements")
        if lookup(keys[-1]) != pairs[-1][1]:
            raise BenchError("lookup returned a wrong value")
    return seconds


def measure(entries: int, batch: int, rounds: int, note: Callable[[str], None]) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="lab-bench-client-") as tmp:
        binary = compile_c(Path(tmp))
        best_c = dict.fromkeys(OPERATIONS, float("inf"))
        best_py = dict.fromkeys(OPERATIONS, float("inf"))
        for index in range(rounds):
            for best, secs in ((best_c, run_c(binary, entries, batch)),
                               (best_py, run_python(entries, batch))):
                for op in OPERATIONS:
                    best[op] = min(best[op], secs[op])
            note(f"bench_client: round {index + 1}/{rounds} done")
    return [Figure(op, entries / best_py[op], entries / best_c[op]) for op in OPERATIONS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.client")
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1024, help="elements per LOOKUP_BATCH call")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    if args.entries < 2 or args.batch < 1 or args.rounds < 1:
        parser.error("need --entries >= 2, --batch >= 1, --rounds >= 1")
    if os.geteuid() != 0:
        print("bench_client: needs root for bpf(2) on the host kernel", file=sys.stderr)
        return 1
    try:
        figures = measure(args.entries, args.batch, args.rounds, lambda _: None)
    except BenchError as e:
        print(f"bench_client: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno in (errno.EPERM, errno.ENOSYS):
            print(f"bench_client: bpf(2) unusable here: {e}", file=sys.stderr)
            return 1
        raise
    print(f"bench_client: kernel {platform.release()}, {args.entries}-entry hash map "
          f"(u32 key, u64 value), batch {args.batch}, best of {args.rounds} rounds each")
    for line in format_table(figures):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
