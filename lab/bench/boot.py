"""`make bench`: boot-to-SSH and whole-run seconds on the default kernel, warm cache, medians.

Run as `python -m lab.bench.boot [--kernel SPEC] [--boots N] [--runs N]`. Each figure is the
median of N real boots/runs; the accelerator is printed with them, because TCG and KVM
differ by an order of magnitude. Boots are measured cold and restored from a snapshot (with
QEMU's resident memory), and so is `lab boot --command true` as a whole process. The first run starts without the guest's kept bytecode
(run/bytecode.py), the others with it; the suites run side by side in one python (run/series.py,
the default), then as many runs again one suite at a time (`--suite-jobs 1`), and again with a
python per suite one at a time (the way before both), and each kind is printed; so are the
suites' own seconds in the guest beside the same suites run natively on the host kernel by the
same runner (as root; skipped otherwise).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..core.outcome import Outcome
from ..core.paths import GUEST_TESTS_DIR, cache_dir
from ..core.timeouts import Timeouts
from ..guest import assets
from ..kernel.spec import DEFAULT_KERNEL, parse_kernel_spec
from ..run import bytecode, guest, series
from ..run.request import RunRequest
from ..run.suites import SUITES, default_tree
from ..vm import accel
from ..vm.boot import booted
from .timing import timed_lab


# How the suites run in the guest: a name, --suite-jobs (None: one per CPU) and one python or not.
RUN_MODES: list[tuple[str, int | None, bool]] = [
    ("side by side", None, True), ("one at a time", 1, True), ("a python per suite, one at a time", 1, False)]


def _quiet(message: str) -> None:
    if message.startswith("warning"):
        print(message, file=sys.stderr)


def describe(name: str, samples: list[float]) -> str:
    return (f"{name:<12} median {statistics.median(samples):6.2f} s   "
            f"(min {min(samples):.2f}, max {max(samples):.2f}, n={len(samples)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.boot")
    parser.add_argument("--kernel", default=DEFAULT_KERNEL)
    parser.add_argument("--boots", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    spec = parse_kernel_spec(args.kernel)
    cache = cache_dir()
    prepared = assets.prepare(spec, cache, print)  # warms the cache; not measured
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp_name:
        tmp = Path(tmp_name)
        choice = accel.choose("auto", prepared.kernel.image, prepared.initramfs, tmp, cache, _quiet)
        print(f"bench: kernel {prepared.kernel.release}, accelerator {choice.accel} ({choice.reason})")
        timeouts = Timeouts().scaled_for(choice.accel)
        for name, snapshots in (("cold", None), ("restored", cache)):
            if snapshots is not None:  # the snapshot this bench restores from, saved now if missing
                with booted(prepared, choice.accel, tmp / "saving", timeouts, snapshots=snapshots):
                    pass
            boots, resident = [], []
            for index in range(args.boots):
                started = time.monotonic()
                with booted(prepared, choice.accel, tmp / f"{name}-{index}", timeouts, snapshots=snapshots) as (m, _):
                    boots.append(time.monotonic() - started)
                    resident.append(qemu_resident_mib(m.pid()))
                    if m.boot["mode"] != name:
                        print(f"bench: a {name} boot came up {m.boot}", file=sys.stderr)
                        return 1
            print(describe(f"boot-to-ssh, {name}", boots) + f"   QEMU resident {statistics.median(resident):.0f} MiB",
                  flush=True)
        for name, extra in (("cold", ["--no-snapshot"]), ("restored", [])):
            whole = [timed_lab(["boot", *extra, "--command", "true"], "bench") for _ in range(args.boots)]
            print(describe(f"lab boot --command true, {name}", whole), flush=True)
        # The first run compiles the suites in the guest, as after any change to guest-tests/; then
        # the suites side by side in one python (the runner's way), one at a time, and one at a
        # time with a python per suite (the way before the runner).
        shutil.rmtree(cache / "bytecode" / bytecode.cache_key(default_tree(), prepared.image.digest),
                      ignore_errors=True)
        runs: dict[str, list[float]] = {}
        in_guest: dict[str, list[float]] = {}
        for mode, jobs, one_python in RUN_MODES:
            for _ in range(args.runs):
                series.ONE_PYTHON = one_python
                started = time.monotonic()
                again = assets.prepare(spec, cache, _quiet)
                request = RunRequest(spec, args.kernel, list(SUITES), "auto", tmp / "results", suite_jobs=jobs)
                result = guest.execute(request, again, cache, _quiet, lambda suite: None)
                seconds = time.monotonic() - started
                if result.outcome is not Outcome.PASSED:
                    print(f"bench: a run ({mode}) ended {result.outcome.value}: {result.reason}", file=sys.stderr)
                    return 1
                restored = bool(result.record.metadata.recorded("bytecode")["restored"])
                kind = f"{mode}, bytecode {'restored' if restored else 'compiled'}"
                runs.setdefault(kind, []).append(seconds)
                in_guest.setdefault(kind, []).append(suites_seconds(result.record.directory))
        series.ONE_PYTHON = True
        for kind in runs:
            print(describe(f"whole-run, {kind}", runs[kind]), flush=True)
            print(describe(f"  suites in the guest, {kind}", in_guest[kind]), flush=True)
        if args.runs:
            print_native_comparison(statistics.median(in_guest.get(f"{RUN_MODES[0][0]}, bytecode restored")
                                                      or next(iter(in_guest.values()))), tmp)
    return 0


def print_native_comparison(guest_seconds: float, tmp: Path) -> None:
    native = native_suites_seconds(tmp)
    if native is None:
        print("suites natively on the host kernel: skipped (needs root for bpf(2))")
        return
    print(f"suites natively on the host kernel: {native:.1f} s, by the same runner (one python, side by side); "
          f"the guest takes {guest_seconds / native:.1f}x that")


def qemu_resident_mib(pid: int | None) -> float:
    """QEMU's resident memory (VmRSS) in MiB, while the guest is up."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def suites_seconds(run_dir: Path) -> float:
    """The suites' own seconds in a run: the one command that runs them, its start included."""
    return float(json.loads((run_dir / "metadata.json").read_text())["stages"]["suites"]["seconds"])


def native_suites_seconds(tmp: Path) -> float | None:
    """The same suites by the same runner (a copy of guest-tests/) on the host's kernel; None without root."""
    if os.geteuid() != 0:
        return None
    root = tmp / "native"
    shutil.copytree(GUEST_TESTS_DIR, root / "guest-tests", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "out").mkdir()
    command = series.series_command(list(SUITES), 600, root=str(root), python=sys.executable)
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", command], capture_output=True, check=False)
    seconds = time.monotonic() - started
    # The lab's own reading of the runner's stream, as for a guest's.
    sink = series.SeriesSink(root / "records", list(SUITES), 600, lambda name: None, lambda result: None)
    (root / "records").mkdir()
    sink.write(done.stdout)
    sink.close()
    ended = sink.results
    if done.returncode != 0 or len(ended) != len(SUITES) or any(r.error or r.pytest_rc != 0 for r in ended):
        said = done.stdout.decode(errors="replace")[-3000:] + done.stderr.decode(errors="replace")[-2000:]
        raise SystemExit(f"bench: the suites failed natively:\n{said}")
    return seconds


if __name__ == "__main__":
    sys.exit(main())
