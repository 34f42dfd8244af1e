"""`make bench`, kernel coverage: what `lab run --coverage` costs against the same run without.

The same source is built twice (found in the cache when it was built before): plain, and with
gcov profiling of kernel/bpf (`--coverage`). Then, alternated, N runs of each of: the plain build
as `lab run` runs it by default (suites side by side), the plain build one suite at a time (what a
coverage run does, for per-suite counters), and the coverage build with `--coverage` (its counters
brought back after each suite and turned into coverage by gcovr on the host). Medians, with the
coverage run's ratio to both and its own `coverage` stage (gcovr) apart.

Run as `python -m lab.bench.coverage [--source debian:6.1] [--runs N]`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ..core.outcome import Outcome
from ..core.paths import cache_dir
from ..guest import assets
from ..kernel import build as kbuild
from ..kernel import source as ksource
from ..kernel.spec import BuildSpec
from ..run import guest
from ..run.request import RunRequest
from ..run.suites import SUITES
from .boot import describe

# name, coverage build or not, --suite-jobs, --coverage
MODES: list[tuple[str, bool, int | None]] = [
    ("plain, side by side", False, None), ("plain, one at a time", False, 1), ("coverage", True, 1)]


def _quiet(message: str) -> None:
    if message.startswith("warning"):
        print(message, file=sys.stderr)


def stage_seconds(run_dir: Path, stage: str) -> float:
    return float(json.loads((run_dir / "metadata.json").read_text())["stages"][stage]["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.coverage")
    parser.add_argument("--source", default="debian:6.1")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    cache = cache_dir()
    spec = ksource.parse_source_spec(args.source)
    builds = {coverage: kbuild.build(kbuild.BuildRequest(spec, coverage=coverage), cache, _quiet).build_id
              for coverage in (False, True)}
    print(f"bench: {args.source}: plain build:{builds[False]}, coverage build:{builds[True]}")
    walls: dict[str, list[float]] = {}
    suites: dict[str, list[float]] = {}
    gcovr: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lab-bench-coverage-") as tmp_name:
        for _ in range(args.runs):
            for name, coverage, jobs in MODES:
                kernel = BuildSpec(builds[coverage])
                started = time.monotonic()
                prepared = assets.prepare(kernel, cache, _quiet)
                request = RunRequest(kernel, f"build:{kernel.build_id}", list(SUITES), "auto", Path(tmp_name),
                                     suite_jobs=jobs, coverage=coverage)
                result = guest.execute(request, prepared, cache, _quiet, lambda suite: None)
                walls.setdefault(name, []).append(time.monotonic() - started)
                if result.outcome is not Outcome.PASSED or (coverage and "summary" not in
                                                             (result.record.metadata.recorded("coverage") or {})):
                    print(f"bench: a {name} run ended {result.outcome.value}: {result.reason}; "
                          f"coverage {result.record.metadata.recorded('coverage')}", file=sys.stderr)
                    return 1
                suites.setdefault(name, []).append(stage_seconds(result.record.directory, "suites"))
                if coverage:
                    gcovr.append(stage_seconds(result.record.directory, "coverage"))
    for name, _, _ in MODES:
        print(describe(f"whole-run, {name}", walls[name]), flush=True)
        print(describe(f"  suites in the guest, {name}", suites[name]), flush=True)
    print(describe("  coverage stage (gcovr on the host)", gcovr))
    covered = statistics.median(walls["coverage"])
    for name in ("plain, side by side", "plain, one at a time"):
        print(f"coverage run / {name}: {covered / statistics.median(walls[name]):.2f}x (goal: at most 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
