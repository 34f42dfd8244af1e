"""Two runs side by side: which tests changed outcome or kernel behaviour, and is B a regression.

Runs are read with results/load.py; tests are matched by (suite, name). The text form is in
compare_text.py.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from ..core.outcome import Outcome
from ..results.load import LoadedRun
from ..results.model import FAIL, PASS, SKIP, TestRecord

# Properties that measure rather than observe: wall-clock times, and how much work the
# concurrency test's walker got through in its time window. They differ between two runs
# of the same kernel, so they are not compared.
MEASUREMENT_PROPERTY = re.compile(r"(^|_)seconds(_|$)|^walker_(walks|values_checked|values_of_other_keys)$")

# A value longer than this is compared word by word, so one changed errno in a long
# transcript shows as that word rather than as two walls of text.
LONG_VALUE = 40

# How bad a run's outcome is, for "B is worse than A". A crash outranks a timeout or a
# lost connection because those can come from a slow or busy host. infra-error and
# interrupted say nothing about the kernel, and an unfinished run (no outcome) nothing yet:
# they have no rank, so a change to or from them is shown but is not a regression.
OUTCOME_RANK: dict[Outcome, int] = {
    Outcome.PASSED: 0,
    Outcome.KERNEL_WARNED: 1,
    Outcome.FAILED: 2,
    Outcome.TIMED_OUT: 3,
    Outcome.LOST_CONNECTION: 3,
    Outcome.KERNEL_CRASHED: 4,
    Outcome.BOOT_FAILED: 5,
}

@dataclass(frozen=True)
class WordChange:
    """One place where a long value differs: the words of A there, and B's instead."""
    a: str
    b: str


@dataclass(frozen=True)
class PropertyChange:
    key: str
    a: str | None  # None: the test did not record this key in that run
    b: str | None
    words: tuple[WordChange, ...] = ()  # set only for long values

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"key": self.key, "a": self.a, "b": self.b}
        if self.words:
            data["words"] = [{"a": w.a, "b": w.b} for w in self.words]
        return data


@dataclass(frozen=True)
class Change:
    """One test whose outcome or recorded behaviour differs between A and B."""
    suite: str
    name: str
    a: TestRecord | None  # None: added in B
    b: TestRecord | None  # None: removed in B
    properties: tuple[PropertyChange, ...] = ()
    regression: bool = False

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "suite": self.suite, "name": self.name,
            "a": self.a.outcome if self.a else None, "b": self.b.outcome if self.b else None,
            "regression": self.regression,
        }
        if self.b and self.b.message:
            data["message"] = self.b.message
        if self.b and self.b.skip_reason:
            data["skip_reason"] = self.b.skip_reason
        if self.properties:
            data["properties"] = [p.to_json() for p in self.properties]
        return data


@dataclass(frozen=True)
class OutcomeChange:
    a: str | None
    b: str | None
    verdict: str  # same | better | worse | different (as bad) | not comparable (see OUTCOME_RANK) | flaky

    @property
    def regression(self) -> bool:
        return self.verdict == "worse"


@dataclass(frozen=True)
class FlakyTest:
    """A test that is flaky in A's runs or in B's (`--repeat`): its change is not counted, since
    flakiness explains it (report/flaky.py). a and b: its counts there, "" where it was steady."""
    suite: str
    name: str
    a: str
    b: str

    def to_json(self) -> dict[str, object]:
        return {"suite": self.suite, "name": self.name, "a": self.a or None, "b": self.b or None}


CATEGORIES = ("newly_failing", "newly_passing", "newly_skipped", "behaviour_changed", "added", "removed")


@dataclass
class Comparison:
    a: LoadedRun
    b: LoadedRun
    outcome: OutcomeChange
    compared: int = 0  # tests in A or B
    newly_failing: list[Change] = field(default_factory=list)
    newly_passing: list[Change] = field(default_factory=list)
    newly_skipped: list[Change] = field(default_factory=list)
    behaviour_changed: list[Change] = field(default_factory=list)
    added: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)
    failing_in_both: int = 0
    skip_reason_changed: int = 0  # skipped in both, for another stated reason: counted, not listed
    flaky: list[FlakyTest] = field(default_factory=list)  # with --repeat: left out of every category
    runs: tuple[int, int] = (1, 1)  # runs of A and of B behind this comparison

    def category(self, name: str) -> list[Change]:
        changes: list[Change] = getattr(self, name)
        return changes

    @property
    def regressions(self) -> list[str]:
        """Why B is a regression on A, one line per kind; empty when it is not."""
        found = []
        if self.newly_failing:
            found.append(f"{len(self.newly_failing)} newly failing")
        added = sum(1 for c in self.added if c.regression)
        if added:
            found.append(f"{added} added and failing")
        removed = sum(1 for c in self.removed if c.regression)
        if removed:
            found.append(f"{removed} removed that passed in A")
        if self.outcome.regression:
            found.append(f"run outcome {self.outcome.a} -> {self.outcome.b}")
        return found


def word_changes(a: str, b: str) -> tuple[WordChange, ...]:
    """The whitespace-separated words that differ, place by place; equal stretches are left out."""
    words_a, words_b = a.split(), b.split()
    matcher = difflib.SequenceMatcher(a=words_a, b=words_b, autojunk=False)
    return tuple(WordChange(" ".join(words_a[i1:i2]), " ".join(words_b[j1:j2]))
                 for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")


def property_changes(a: dict[str, str], b: dict[str, str]) -> tuple[PropertyChange, ...]:
    changes = []
    for key in sorted(set(a) | set(b)):
        if MEASUREMENT_PROPERTY.search(key):
            continue
        value_a, value_b = a.get(key), b.get(key)
        if value_a == value_b:
            continue
        words: tuple[WordChange, ...] = ()
        if value_a is not None and value_b is not None and max(len(value_a), len(value_b)) > LONG_VALUE:
            words = word_changes(value_a, value_b)
        changes.append(PropertyChange(key, value_a, value_b, words))
    return tuple(changes)


def outcome_change(a: str | None, b: str | None) -> OutcomeChange:
    if a == b:
        return OutcomeChange(a, b, "same")
    rank_a, rank_b = _rank(a), _rank(b)
    if rank_a is None or rank_b is None:
        return OutcomeChange(a, b, "not comparable")
    return OutcomeChange(a, b, "worse" if rank_b > rank_a else "better" if rank_b < rank_a else "different")


def _rank(value: str | None) -> int | None:
    try:
        return OUTCOME_RANK.get(Outcome(value))
    except ValueError:
        return None


def compare(a: LoadedRun, b: LoadedRun) -> Comparison:
    result = Comparison(a, b, outcome_change(a.outcome, b.outcome))
    keys = sorted(set(a.tests) | set(b.tests))
    result.compared = len(keys)
    for key in keys:
        test_a, test_b = a.tests.get(key), b.tests.get(key)
        if test_a is None:
            assert test_b is not None
            result.added.append(Change(*key, None, test_b, regression=test_b.outcome_class == FAIL))
            continue
        if test_b is None:
            result.removed.append(Change(*key, test_a, None, regression=test_a.outcome_class == PASS))
            continue
        was, now = test_a.outcome_class, test_b.outcome_class
        props = property_changes(test_a.properties, test_b.properties)
        change = Change(*key, test_a, test_b, props, regression=was != FAIL and now == FAIL)
        if change.regression:
            result.newly_failing.append(change)
        elif was != PASS and now == PASS:
            result.newly_passing.append(change)
        elif was != SKIP and now == SKIP:
            result.newly_skipped.append(change)
        else:  # same class in both runs
            if props:
                result.behaviour_changed.append(change)
            if now == FAIL:
                result.failing_in_both += 1
            if now == SKIP and test_a.skip_reason != test_b.skip_reason:
                result.skip_reason_changed += 1
    return result


def _run_json(run: LoadedRun) -> dict[str, object]:
    return {"directory": str(run.directory), "run_id": run.run_id, "kernel": run.kernel,
            "outcome": run.outcome, "reason": run.reason, "tests": len(run.tests)}


def to_json(result: Comparison) -> dict[str, object]:
    data: dict[str, object] = {
        "a": _run_json(result.a),
        "b": _run_json(result.b),
        "run_outcome": {"a": result.outcome.a, "b": result.outcome.b, "verdict": result.outcome.verdict},
        "counts": {"compared": result.compared,
                   **{name: len(result.category(name)) for name in CATEGORIES},
                   "failing_in_both": result.failing_in_both,
                   "skip_reason_changed": result.skip_reason_changed,
                   "flaky": len(result.flaky)},
        "runs": {"a": result.runs[0], "b": result.runs[1]},
        "flaky": [test.to_json() for test in result.flaky],
    }
    for name in CATEGORIES:
        data[name] = [change.to_json() for change in result.category(name)]
    data["regression"] = bool(result.regressions)
    data["regressions"] = result.regressions
    return data
