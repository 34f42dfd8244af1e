"""One bisection's directory and its steps: <results root>/bisect-<key>/, where the key hashes the
request (kernels or revisions, test, property, repeat, fragments, patches, tree, run options), so
the same command again opens the same directory and reuses every step already decided.

bisect.json holds the request, each phase's candidates and steps (the values seen, the verdict,
seconds, every run directory) and the answer; it is rewritten after every step, so an interrupted
bisection keeps what it learnt. Each step's runs are child `lab run`s (matrix/children) of the
test alone, under steps/<phase>-<n>/r<repetition>/; reproducer.sh reruns the final pair.
"""
from __future__ import annotations

import hashlib
import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..core.files import write_json_atomic
from ..core.log import Log
from ..core.paths import REPO_ROOT
from ..matrix import children as matrixrun
from ..matrix import progress as matrixprogress
from ..results import load
from . import judge, search
from .candidates import Candidate

BISECT_JSON = "bisect.json"
SCRIPT = "reproducer.sh"


def request_key(request: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Step:
    key: str  # the candidate's
    label: str
    kernel: str  # what its runs booted (a package's spec, a commit's build:<id>); "" if none was
    verdict: str  # search.SKIPPED, or "" for a decided value (judged against the good value later)
    value: str | None
    note: str = ""
    seconds: float = 0.0
    runs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"key": self.key, "label": self.label, "kernel": self.kernel, "verdict": self.verdict,
                "value": self.value, "note": self.note, "seconds": round(self.seconds, 1), "runs": self.runs}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Step:
        runs = data.get("runs")
        return cls(str(data["key"]), str(data.get("label", "")), str(data.get("kernel", "")),
                   str(data.get("verdict", "")), None if data.get("value") is None else str(data["value"]),
                   str(data.get("note", "")), float(str(data.get("seconds", 0.0))),
                   [str(r) for r in runs] if isinstance(runs, list) else [])

    def decided(self, good_value: str) -> str:
        return judge.judge(judge.StepVerdict(self.verdict, self.value, self.note), good_value).verdict


# How a phase gets a candidate's kernel: its `lab run --kernel`, or a Step already final (a commit
# that does not build is skipped without a run).
Prepare = Callable[[Candidate], "str | Step"]


class Session:
    def __init__(self, root: Path, request: dict[str, object], log: Log) -> None:
        self.request = request
        self.directory = root / f"bisect-{request_key(request)}"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.current = ""  # what is being tried now, for "interrupted at ..."
        self.data: dict[str, object] = {"request": request, "phases": {}}
        previous = self._read()
        self.reused = 0
        if previous is not None:
            self.data["phases"] = previous.get("phases", {})
            self.reused = sum(len(steps) for p in self._phases().values()
                              if isinstance(steps := p.get("steps"), dict))

    def _read(self) -> dict[str, object] | None:
        path = self.directory / BISECT_JSON
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("request") == self.request else None

    def _phases(self) -> dict[str, dict[str, object]]:
        phases = self.data["phases"]
        assert isinstance(phases, dict)
        return phases

    def phase(self, name: str, candidates: list[Candidate]) -> dict[str, object]:
        phase = self._phases().setdefault(name, {"steps": {}})
        phase["candidates"] = [{"label": c.label, "key": c.key, "kernel": c.kernel} for c in candidates]
        return phase

    def known(self, phase: str, key: str) -> Step | None:
        steps = self._phases().get(phase, {}).get("steps", {})
        data = steps.get(key) if isinstance(steps, dict) else None
        return Step.from_json(data) if isinstance(data, dict) else None

    def keep(self, phase: str, step: Step) -> None:
        steps = self._phases()[phase]["steps"]
        assert isinstance(steps, dict)
        steps[step.key] = step.to_json()
        self.save()

    def save(self, **extra: object) -> None:
        self.data.update(extra)
        write_json_atomic(self.directory / BISECT_JSON, self.data)

    def step_root(self, phase: str, index: int) -> Path:
        return self.directory / "steps" / f"{phase}-{index}"


@dataclass(frozen=True)
class Runner:
    """How a step's runs are started: the probe, the options every child `lab run` gets, repeat, jobs."""
    probe: judge.Probe
    extra: list[str]  # --test, --guest-tests, --accel, bounds ...
    repeat: int
    jobs: int
    env: dict[str, str]
    show: Log


def run_kernels(session: Session, runner: Runner, phase: str, work: list[tuple[int, Candidate, str]]) -> list[Step]:
    """The runs of several candidates at once (the endpoints: their repetitions interleaved), each
    kernel `repeat` times; a Step each, with the value its runs agreed on."""
    children: list[tuple[int, matrixrun.Child]] = []
    for repetition in range(1, runner.repeat + 1):
        for position, (index, candidate, kernel) in enumerate(work):
            root = session.step_root(phase, index) / f"r{repetition}"
            extra = [*runner.extra, *([f"--repetition={repetition}"] if runner.repeat > 1 else [])]
            argv = matrixrun.child_argv(kernel, runner.probe.suite, root, extra)
            children.append((position, matrixrun.Child(f"{candidate.key[:12]} r{repetition}", root, argv)))
    started = time.monotonic()
    matrixrun.run_children([child for _, child in children], runner.jobs, runner.env, runner.show)
    seconds = time.monotonic() - started
    steps = []
    for position, (index, candidate, kernel) in enumerate(work):
        mine = [child for p, child in children if p == position]
        seen, runs = [], []
        for child in mine:
            directory = matrixprogress.run_directory(child.root)
            if directory is None:
                raise judge.HostFailed(f"{candidate.label}: the run left no run directory (exit {child.returncode}; "
                                       f"see {child.log_path})")
            runs.append(str(directory.relative_to(session.directory)))
            seen.append(judge.seen_in(load.load_run(directory), runner.probe))
        agreed = judge.agreed(seen)
        steps.append(Step(candidate.key, candidate.label, kernel, agreed.verdict, agreed.value, agreed.note,
                          seconds / len(work), runs))
    return steps


@dataclass
class PhaseResult:
    answer: search.Answer | None  # None: the endpoints left nothing to bisect (see `problem`)
    steps: list[Step]  # in the order decided, the reused ones first
    good_value: str | None = None
    bad_value: str | None = None
    problem: str = ""
    agree: bool = False  # good and bad gave the same value: bad input, exit 2


def bisect(session: Session, runner: Runner, phase: str, candidates: list[Candidate], prepare: Prepare,
           announce: Callable[[int, Step, str], None]) -> PhaseResult:
    """Endpoints first (together), then one candidate at a time until the answer; every step kept."""
    session.phase(phase, candidates)
    verdicts: dict[int, str] = {}
    order: list[Step] = []

    def evaluate(indices: list[int]) -> list[Step]:
        session.current = f"{phase} [{', '.join(str(i + 1) for i in indices)}/{len(candidates)}] " \
            + ", ".join(candidates[i].label for i in indices)
        found: dict[int, Step] = {}
        to_run: list[tuple[int, Candidate, str]] = []
        for index in indices:
            candidate = candidates[index]
            known = session.known(phase, candidate.key)
            if known is not None:
                found[index] = known
                continue
            started = time.monotonic()
            prepared = prepare(candidate)
            if isinstance(prepared, Step):  # decided without a run: it does not build
                prepared.seconds = time.monotonic() - started
                session.keep(phase, prepared)
                found[index] = prepared
            else:
                to_run.append((index, candidate, prepared))
        if to_run:
            for (index, _, _), step in zip(to_run, run_kernels(session, runner, phase, to_run)):
                session.keep(phase, step)
                found[index] = step
        return [found[index] for index in indices]

    good, bad = evaluate([0, len(candidates) - 1])
    order += [good, bad]
    for index, step in ((0, good), (len(candidates) - 1, bad)):
        announce(index, step, "good endpoint" if index == 0 else "bad endpoint")
    result = PhaseResult(None, order, good.value, bad.value)
    if good.value is None or bad.value is None:
        which, step = ("good", good) if good.value is None else ("bad", bad)
        result.problem = f"the {which} kernel {step.label} cannot be judged: {step.note}"
        return result
    if good.value == bad.value:
        result.problem = f"good and bad agree: {runner.probe.label} is {good.value!r} on both; nothing to bisect"
        result.agree = True
        return result
    verdicts[0], verdicts[len(candidates) - 1] = search.GOOD, search.CHANGED
    while (next_index := search.next_candidate(verdicts)) is not None:
        step = evaluate([next_index])[0]
        verdicts[next_index] = step.decided(good.value)
        order.append(step)
        announce(next_index, step, verdicts[next_index])
    result.answer = search.answer(verdicts)
    return result


def write_reproducer(session: Session, good: Step, changed: Step, extra: list[str], notes: list[str],
                     cache: Path) -> Path:
    """reproducer.sh: the test alone on the last good kernel and on the first changed one."""
    def run_line(step: Step, name: str) -> str:
        argv = ["run", f"--kernel={step.kernel}", *extra]
        return f'"$@" {shlex.join(argv)} --results "$results/{name}" || echo "{name}: lab run exit $?"'

    lines = ["#!/bin/sh",
             f"# Reruns the final pair of bisection {session.directory.name}: the last good kernel and the first changed.",
             "# usage: sh reproducer.sh [RESULTS_ROOT]   then: lab compare RESULTS_ROOT/good/* RESULTS_ROOT/changed/*",
             f"#   last good:     {good.label}",
             f"#   first changed: {changed.label}",
             *(f"# note: {note}" for note in notes),
             "set -eu",
             f"results=${{1:-{shlex.quote(str(session.directory / 'reproduced'))}}}",
             'case $results in /*) ;; *) results=$PWD/$results ;; esac',
             f"cd {shlex.quote(str(REPO_ROOT))}",
             # The bisection's cache: a commit's kernel is a build:<id> there.
             f"LAB_CACHE=${{LAB_CACHE:-{shlex.quote(str(cache.resolve()))}}}; export LAB_CACHE",
             'if [ -x .venv/bin/lab ]; then set -- .venv/bin/lab; else set -- python3 -m lab; fi',
             run_line(good, "good"), run_line(changed, "changed")]
    path = session.directory / SCRIPT
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path
