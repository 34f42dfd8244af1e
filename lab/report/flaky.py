"""Flakes: a test whose outcome or recorded behaviour differs between runs of one kernel.

`--repeat N` runs a kernel N times; a test is flaky when its outcome class (pass/fail/skip) or one of
its behaviour properties (compare.MEASUREMENT_PROPERTY excepted: times and counts of work done
differ on every run) is not the same in every run that has its record. A run cut short (the test
has no record there) says nothing about the test and is left out of its counts.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..results.load import Key, LoadedRun
from .compare import (
    CATEGORIES,
    MEASUREMENT_PROPERTY,
    Comparison,
    FlakyTest,
    OutcomeChange,
    compare,
    outcome_change,
)

NOT_RECORDED = "(not recorded)"


@dataclass(frozen=True)
class Flake:
    suite: str
    name: str
    outcomes: dict[str, int]  # outcome class -> runs, the most frequent first
    properties: dict[str, dict[str, int]]  # only the properties that differ: value -> runs, the same order

    @property
    def runs(self) -> int:
        return sum(self.outcomes.values())

    @property
    def outcome_flaky(self) -> bool:
        return len(self.outcomes) > 1

    def counts(self) -> str:
        """`2 pass, 1 fail`, then each property that differs: `key: 'a' x2, 'b' x1`."""
        parts = [", ".join(f"{n} {cls}" for cls, n in self.outcomes.items())]
        for key, values in self.properties.items():
            parts.append(f"{key}: " + ", ".join(f"{value!r} x{n}" for value, n in values.items()))
        return "; ".join(parts)

    def to_json(self) -> dict[str, object]:
        return {"suite": self.suite, "name": self.name, "runs": self.runs, "outcomes": self.outcomes,
                "properties": self.properties}


def flake_of(key: Key, runs: list[LoadedRun]) -> Flake | None:
    records = [run.tests[key] for run in runs if key in run.tests]
    outcomes = Counter(record.outcome_class for record in records)
    properties: dict[str, dict[str, int]] = {}
    for prop in sorted({k for record in records for k in record.properties}):
        if MEASUREMENT_PROPERTY.search(prop):
            continue
        values = Counter(record.properties.get(prop, NOT_RECORDED) for record in records)
        if len(values) > 1:
            properties[prop] = dict(values.most_common())
    if len(outcomes) <= 1 and not properties:
        return None
    return Flake(key[0], key[1], dict(outcomes.most_common()), properties)


def find(runs: list[LoadedRun]) -> dict[Key, Flake]:
    """Every flaky test of these runs (of one kernel), keyed by (suite, name), in test order."""
    keys = sorted({key for run in runs for key in run.tests})
    return {key: flake for key in keys if (flake := flake_of(key, runs)) is not None}


def render(runs: list[LoadedRun], flakes: dict[Key, Flake]) -> str:
    """The summary `lab run --repeat N` ends with."""
    outcomes = Counter(run.outcome or "unfinished" for run in runs)
    lines = [f"repeat: {len(runs)} runs: " + ", ".join(f"{n} {outcome}" for outcome, n in outcomes.items())]
    if not flakes:
        lines.append("flaky: none (every test's outcome and behaviour the same in every run)")
    for flake in flakes.values():
        lines.append(f"flaky: {flake.suite}/{flake.name}: {flake.counts()}")
    lines += [f"  {run.directory}" for run in runs]
    return "\n".join(lines)


def compare_repeated(a_runs: list[LoadedRun], b_runs: list[LoadedRun]) -> Comparison:
    """A against B when each side ran one or more times: the first runs compared test by test, with
    every test that is flaky on either side taken out of the changes (listed as flaky instead), and
    the run outcome compared only when it was the same in every run of each side. So a change is a
    regression only when flakiness does not explain it; one run each is plain `compare`."""
    result = compare(a_runs[0], b_runs[0])
    result.runs = (len(a_runs), len(b_runs))
    if len(a_runs) == 1 and len(b_runs) == 1:
        return result
    flakes_a, flakes_b = find(a_runs), find(b_runs)
    flaky = set(flakes_a) | set(flakes_b)
    for category in CATEGORIES:
        changes = result.category(category)
        changes[:] = [c for c in changes if (c.suite, c.name) not in flaky]
    result.flaky = [FlakyTest(key[0], key[1], flakes_a[key].counts() if key in flakes_a else "",
                              flakes_b[key].counts() if key in flakes_b else "") for key in sorted(flaky)]
    outcomes_a = {run.outcome for run in a_runs}
    outcomes_b = {run.outcome for run in b_runs}
    if len(outcomes_a) > 1 or len(outcomes_b) > 1:
        result.outcome = OutcomeChange(a_runs[0].outcome, b_runs[0].outcome, "flaky")
    else:
        result.outcome = outcome_change(a_runs[0].outcome, b_runs[0].outcome)
    return result
