"""`make bench`: boot-to-SSH and whole-run seconds on the default kernel, warm cache, medians.

Run as `python -m lab.bench.boot [--kernel SPEC] [--boots N] [--runs N]`. Each figure is the
median of N real boots/runs; the accelerator is printed with them, because TCG and KVM
differ by an order of magnitude.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ..core.outcome import Outcome
from ..core.paths import cache_dir
from ..core.timeouts import Timeouts
from ..guest import assets
from ..kernel.spec import DEFAULT_KERNEL, parse_kernel_spec
from ..run import guest
from ..run.request import RunRequest
from ..run.suites import SUITES
from ..vm import accel
from ..vm.boot import booted


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
        boots = []
        for index in range(args.boots):
            started = time.monotonic()
            with booted(prepared, choice.accel, tmp / f"boot-{index}", timeouts):
                boots.append(time.monotonic() - started)
        print(describe("boot-to-ssh", boots), flush=True)
        runs = []
        for index in range(args.runs):
            started = time.monotonic()
            again = assets.prepare(spec, cache, _quiet)
            request = RunRequest(spec, args.kernel, list(SUITES), "auto", tmp / "results")
            result = guest.execute(request, again, cache, _quiet, lambda suite: None)
            runs.append(time.monotonic() - started)
            if result.outcome is not Outcome.PASSED:
                print(f"bench: run {index} ended {result.outcome.value}: {result.reason}", file=sys.stderr)
                return 1
        print(describe("whole-run", runs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
