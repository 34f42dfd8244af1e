"""`lab validate`'s work, version by version: acquire the source, choose the series (its port),
check that it applies (a dry run on linked files), build the base and the patched kernel; then
run the suites on every built pair as child `lab run`s, then compare base and patched.

Builds run one at a time, in this process (each is `make -j<cores>` already, and a warm cache
answers in seconds), every version's before the first run: a build and TCG guests compete for
the same cores, so overlapping them would save little, and an interrupted build is stopped the
way `lab kernel build` stops it. The runs are child processes (matrix/children: their own
signals, QEMU cleanup and progress lines), at most `jobs` at once across all versions, so the
versions' runs share the lanes. Each source is acquired once (apt lists read once) and handed
to the apply check and both builds. A version that stops early (the series does not apply, a build fails, its
source cannot be had) keeps what it found and the others go on. Everything found is kept in
VersionState, so the table and the report show as much as was done when interrupted.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InfraError, UserError
from ..core.files import new_stamped_dir
from ..core.log import Log
from ..coverage import collect, summary
from ..coverage import diff as diffcoverage
from ..kernel import build as kernel_build
from ..kernel import profiling
from ..kernel import patches
from ..kernel import source as ksource
from ..matrix import children as matrixrun
from ..matrix import progress as matrixprogress
from ..report import compare, flaky
from ..results import load
from .plan import Plan, Version

SIDES = ("base", "patched")
_KEPT_LOG = re.compile(r"\(log: (\S+)\)$")


@dataclass
class BuildStep:
    build_id: str | None = None
    cached: bool = False
    seconds: float = 0.0
    error: str | None = None  # the build's one line: first compiler error, config error, host failure
    log: str | None = None  # the kept log of a failed compile
    infra: bool = False  # the host failed, not the source

    def to_json(self) -> dict[str, object]:
        return {"build_id": self.build_id, "cached": self.cached, "seconds": round(self.seconds, 1),
                "error": self.error, "log": self.log}


@dataclass
class VersionState:
    version: Version
    directory: Path  # <validation dir>/<n>-<source>/, holding base/ and patched/ run roots
    tree: ksource.SourceTree | None = None
    series: list[patches.Patch] = field(default_factory=list)
    port: str | None = None  # "ports/6.12" of a series directory, when one was chosen
    applies: patches.ApplyCheck | None = None
    builds: dict[str, BuildStep] = field(default_factory=dict)
    children: dict[str, matrixrun.Child] = field(default_factory=dict)  # each side's (first) run
    repeats: dict[str, list[matrixrun.Child]] = field(default_factory=dict)  # with --repeat: every run of each side
    comparison: compare.Comparison | None = None
    problem: str | None = None  # why no verdict could be reached (the host, an unreadable run)
    diff_coverage: diffcoverage.DiffCoverage | None = None  # --coverage: the series' changed lines run or not
    coverage_problem: str | None = None  # --coverage: why there is no diff coverage
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def resolved(self) -> str:
        """What the source turned out to be: the Debian package and version, or the kind and version."""
        if self.tree is None:
            return ""
        identity = self.tree.identity
        if identity.get("package"):
            return f"{identity['package']} {identity.get('version', '')} ({self.tree.version})"
        return f"{identity.get('origin', 'source')} {self.tree.version}"

    def run_directory(self, side: str) -> Path | None:
        child = self.children.get(side)
        return matrixprogress.run_directory(child.root) if child else None


def new_validate_dir(results_root: Path) -> Path:
    return new_stamped_dir(results_root, "validate")


def new_states(plan: Plan, directory: Path) -> list[VersionState]:
    return [VersionState(v, directory / v.directory_name) for v in plan.versions]


def _build(plan: Plan, state: VersionState, side: str, cache: Path, log: Log) -> BuildStep:
    started = time.monotonic()
    step = BuildStep()
    state.builds[side] = step
    try:
        built = kernel_build.build(plan.request(state.version, side == "patched"), cache, log, source=state.tree)
        step.build_id, step.cached = built.build_id, built.cached
    except UserError as exc:  # a compiler or config error of this source: this version's finding
        step.error = str(exc)
        if kept := _KEPT_LOG.search(step.error):
            step.log = kept[1]
    except InfraError as exc:
        step.error, step.infra = f"infrastructure error: {exc}", True
    step.seconds = time.monotonic() - started
    state.timings[f"{side}_build_seconds"] = round(step.seconds, 1)
    return step


def prepare(plan: Plan, state: VersionState, cache: Path, log: Log) -> None:
    """Source, series, apply check, base build, patched build: stops at the first that fails."""
    label = f"[{state.version.source}]"
    started = time.monotonic()
    try:
        state.tree = ksource.acquire(state.version.spec, cache, log)
        request = plan.request(state.version, patched=True)
        for path in request.patches:
            if path.is_dir() and (port := patches.port_for(path, state.tree.version)) is not None:
                state.port = f"{path.name}/{port.relative_to(path)}"
        try:
            state.series = patches.load_series(list(request.patches), state.tree.version)
        except UserError as exc:  # e.g. a series directory of ports only, none for this version
            state.applies = patches.ApplyCheck(f"no series for {state.tree.version}: {exc}")
        else:
            state.applies = patches.check_applies(state.tree.root, state.series, cache / "work")
    except (UserError, InfraError) as exc:
        state.problem = f"source: {exc}"
    state.timings["source_and_apply_check_seconds"] = round(time.monotonic() - started, 1)
    if state.problem or state.applies is None or state.applies.failure:
        log(f"validate: {label} {state.problem or (state.applies.describe() if state.applies else '')}")
        return
    log(f"validate: {label} {state.resolved}: the series applies {state.applies.describe()}")
    for side in SIDES:
        if _build(plan, state, side, cache, log).error:
            log(f"validate: {label} {side} build: {state.builds[side].error}")
            return


def make_children(states: list[VersionState], suites: str, extra: list[str], repeat: int = 1,
                  coverage: bool = False) -> list[matrixrun.Child]:
    """Each built version's base and patched runs; with --repeat N, N of each, interleaved (base 1,
    patched 1, base 2, ...) so that what the host does meanwhile falls on both sides alike.
    `coverage`: the patched runs are `--coverage` runs (their kernel is a coverage build)."""
    children = []
    for repetition in range(1, repeat + 1):
        for state in states:
            steps = [state.builds.get(side) for side in SIDES]
            if not all(step and step.build_id for step in steps):
                continue
            for side, step in zip(SIDES, steps):
                assert step is not None and step.build_id
                root = state.directory / side if repeat == 1 else state.directory / side / f"r{repetition}"
                again = [f"--repetition={repetition}"] if repeat > 1 else []
                again += ["--coverage"] if coverage and side == "patched" else []
                child = matrixrun.Child(f"{state.version.source} {side}" + (f" r{repetition}" if repeat > 1 else ""),
                                        root, matrixrun.child_argv(f"build:{step.build_id}", suites, root, [*extra, *again]))
                state.children.setdefault(side, child)
                state.repeats.setdefault(side, []).append(child)
                children.append(child)
    return children


def compare_runs(state: VersionState) -> None:
    """Base against patched, once both children are done; a run that left nothing readable is
    the version's problem (no verdict), never "no regression"."""
    if len(state.children) != len(SIDES):
        return
    for side in SIDES:
        child = state.children[side]
        state.timings[f"{side}_run_seconds"] = child.seconds or 0.0
    directories = {side: [matrixprogress.run_directory(c.root) for c in state.repeats.get(side, [state.children[side]])]
                   for side in SIDES}
    missing = [side for side in SIDES if any(d is None for d in directories[side])]
    if missing:
        state.problem = f"no {' or '.join(missing)} run directory (see {missing[0]}/lab.log)"
        return
    try:
        runs = {side: [load.load_run(d) for d in directories[side] if d is not None] for side in SIDES}
    except UserError as exc:
        state.problem = f"unreadable run: {exc}"
        return
    state.comparison = flaky.compare_repeated(runs["base"], runs["patched"])


def measure_coverage(state: VersionState, cache: Path) -> None:
    """The series' changed lines in kernel/bpf, each run or not by the patched kernel's (first) run."""
    step = state.builds.get("patched")
    run_dir = state.run_directory("patched")
    if state.tree is None or step is None or not step.build_id or run_dir is None:
        return  # no patched run: nothing was measured, and the verdict already says why
    material = profiling.material(kernel_build.builds_dir(cache) / step.build_id)
    trace = collect.run_trace(run_dir)
    if material is None or not trace.is_file():
        state.coverage_problem = f"the patched run has no coverage (see {run_dir / 'metadata.json'})"
        return
    try:
        counts = summary.line_counts(summary.load_trace(trace))
    except (OSError, ValueError) as exc:
        state.coverage_problem = f"the patched run's coverage cannot be read: {exc}"
        return
    state.diff_coverage = diffcoverage.measure(state.tree.root, material, counts)


def run(plan: Plan, states: list[VersionState], suites: str, jobs: int, extra: list[str], env: dict[str, str],
        cache: Path, log: Log, show: Log, repeat: int = 1) -> None:
    """Every version's builds, then every built pair's runs, then the comparisons (states are
    filled in as it goes; an interruption leaves them as far as they got)."""
    for state in states:
        show(f"== [{state.version.index}/{len(states)}] {state.version.source}")
        prepare(plan, state, cache, log)
    children = make_children(states, suites, extra, repeat, plan.coverage)
    if not children:
        return
    show(f"validate: {len(children)} run(s), {min(jobs, len(children))} at once")
    try:
        matrixrun.prepare_cache(log)
        matrixrun.run_children(children, jobs, env, show)
    finally:
        # Also when interrupted: the runs stopped then say so ("interrupted"), which is no verdict.
        for state in states:
            compare_runs(state)
            if plan.coverage:
                measure_coverage(state, cache)
