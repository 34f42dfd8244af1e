"""What one run says about the bisected test, and a step's verdict from its runs (pure).

The value of a run is the test's outcome class (pass / fail / skip), or, with `--property KEY`,
the value the test recorded under KEY ("(not recorded)" when it recorded none). A run that did
not get to the test says nothing: an infra-error or interrupted run stops the bisection (the host
failed; a rerun retries the step), any other (the kernel did not boot, crashed, hung) makes the
candidate untestable, as a commit that does not build is.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..core.outcome import Outcome
from ..results.load import LoadedRun
from .search import CHANGED, GOOD, SKIPPED

NOT_RECORDED = "(not recorded)"
UNJUDGED = {Outcome.INFRA_ERROR.value, Outcome.INTERRUPTED.value, None}


class HostFailed(Exception):
    """A run of a step ended infra-error or interrupted: nothing was learnt of the kernel."""


@dataclass(frozen=True)
class Probe:
    """What to look at in each run: one test, and optionally one property it records."""
    suite: str
    name: str
    prop: str | None = None

    @property
    def label(self) -> str:
        return f"{self.suite}/{self.name}" + (f" property {self.prop}" if self.prop else " outcome")


@dataclass(frozen=True)
class Seen:
    """One run's answer: the value, or why there is none (`untestable`)."""
    value: str | None
    untestable: str = ""


def seen_in(run: LoadedRun, probe: Probe) -> Seen:
    record = run.tests.get((probe.suite, probe.name))
    if record is None:
        if run.outcome in UNJUDGED:
            raise HostFailed(f"run {run.directory} ended {run.outcome or 'unfinished'} ({run.reason}) before the test")
        return Seen(None, f"{run.outcome}: the test did not run ({run.reason})")
    if probe.prop is None:
        return Seen(record.outcome_class)
    return Seen(record.properties.get(probe.prop, NOT_RECORDED))


@dataclass(frozen=True)
class StepVerdict:
    verdict: str  # search.GOOD | CHANGED | SKIPPED, or "" for an endpoint (which defines the values)
    value: str | None  # the value all its runs agreed on, None when they did not (or had none)
    note: str = ""  # why skipped: flaky counts, the run's outcome, the build error


def agreed(seen: list[Seen]) -> StepVerdict:
    """The value every run of a step agreed on; disagreeing runs make the step flaky (skipped)."""
    untestable = [s.untestable for s in seen if s.value is None]
    if untestable:
        return StepVerdict(SKIPPED, None, untestable[0])
    counts = Counter(s.value for s in seen)
    if len(counts) > 1:
        return StepVerdict(SKIPPED, None, "flaky: " + ", ".join(f"{n} x {value}" for value, n in counts.items()))
    return StepVerdict("", seen[0].value)


def judge(step: StepVerdict, good_value: str) -> StepVerdict:
    """A decided step against the good kernel's value: the same is GOOD, anything else CHANGED."""
    if step.verdict == SKIPPED:
        return step
    return StepVerdict(GOOD if step.value == good_value else CHANGED, step.value, step.note)
