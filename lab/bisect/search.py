"""The bisection over candidates 0..n-1 (0 the good kernel, n-1 the bad one), oldest first: which
to try next and, once none is left, the answer. Pure: the verdicts are given.

A candidate is GOOD (the test did what it did on the good kernel), CHANGED (it did something else)
or SKIPPED (untestable: it does not build, does not boot, or its repeated runs disagree). As `git
bisect` does, a skipped candidate is stepped around: the next try is the untried one nearest the
middle, and skips between the last good and the first changed leave a range instead of one answer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

GOOD, CHANGED, SKIPPED = "good", "changed", "skipped"


@dataclass(frozen=True)
class Answer:
    last_good: int
    first_changed: int
    skipped: tuple[int, ...]  # the candidates between them, all untestable

    @property
    def exact(self) -> bool:
        return not self.skipped

    @property
    def suspects(self) -> tuple[int, ...]:
        """The candidates one of which is the first changed: itself alone when exact."""
        return (*self.skipped, self.first_changed)


def bounds(verdicts: dict[int, str]) -> tuple[int, int]:
    """(last good, first changed) as far as the verdicts go: the first changed candidate, and the
    last good one before it (the endpoints must be decided)."""
    changed = [i for i, v in verdicts.items() if v == CHANGED]
    if not changed:
        raise ValueError("no changed candidate yet: the bad endpoint must be decided first")
    high = min(changed)
    goods = [i for i, v in verdicts.items() if v == GOOD and i < high]
    if not goods:
        raise ValueError("no good candidate before the first changed one: the good endpoint must be decided first")
    return max(goods), high


def next_candidate(verdicts: dict[int, str]) -> int | None:
    """The candidate to try next, or None when the answer is reached."""
    low, high = bounds(verdicts)
    untried = [i for i in range(low + 1, high) if i not in verdicts]
    if not untried:
        return None
    middle = (low + high) / 2
    return min(untried, key=lambda i: (abs(i - middle), i))


def answer(verdicts: dict[int, str]) -> Answer:
    low, high = bounds(verdicts)
    if next_candidate(verdicts) is not None:
        raise ValueError("the bisection is not done")
    return Answer(low, high, tuple(range(low + 1, high)))


def most_steps(count: int) -> int:
    """Steps (kernels tried, endpoints included) a bisection of `count` candidates takes without skips."""
    return 2 + (math.ceil(math.log2(count - 1)) if count > 2 else 0)
