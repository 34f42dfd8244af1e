"""The bisection itself (lab/bisect/search.py): every first-changed position of every length is found
within the step bound, skips are stepped around, and skips next to the answer leave a range."""
from __future__ import annotations

import itertools

import pytest

from lab.bisect import search
from lab.bisect.search import CHANGED, GOOD, SKIPPED


def bisect(count: int, first_changed: int, skipped: frozenset[int] = frozenset()) -> tuple[search.Answer, list[int]]:
    """Run the search against a kernel line whose behaviour changes at `first_changed`."""
    verdicts = {0: GOOD, count - 1: CHANGED}
    tried = [0, count - 1]
    while (index := search.next_candidate(verdicts)) is not None:
        assert index not in verdicts, "a candidate is never tried twice"
        tried.append(index)
        verdicts[index] = SKIPPED if index in skipped else GOOD if index < first_changed else CHANGED
    return search.answer(verdicts), tried


@pytest.mark.parametrize("count", range(2, 18))
def test_every_change_is_found_exactly_within_the_bound(count: int) -> None:
    for first in range(1, count):
        found, tried = bisect(count, first)
        assert found.exact and found.first_changed == first and found.last_good == first - 1
        assert len(tried) <= search.most_steps(count), (count, first, tried)


def test_the_bound_for_five_packages_is_four_runs() -> None:
    # make bench's goal: ceil(log2 5) + 1 = 4 kernels tried, the two endpoints included.
    assert search.most_steps(5) == 4
    assert max(len(bisect(5, first)[1]) for first in range(1, 5)) == 4


def test_a_skipped_candidate_is_stepped_around() -> None:
    found, tried = bisect(9, first_changed=6, skipped=frozenset({4}))
    assert 4 in tried and found.exact and found.first_changed == 6


def test_skips_next_to_the_change_leave_the_range_of_suspects() -> None:
    found, _ = bisect(9, first_changed=5, skipped=frozenset({3, 4}))
    assert not found.exact
    assert found.last_good == 2 and found.first_changed == 5
    assert found.suspects == (3, 4, 5)


@pytest.mark.parametrize("count", [3, 6, 10])
def test_the_truth_is_always_among_the_suspects(count: int) -> None:
    interior = range(1, count - 1)
    for first in range(1, count):
        for size in (1, 2):
            for skipped in itertools.combinations(interior, size):
                found, _ = bisect(count, first, frozenset(skipped))
                assert first in found.suspects
                assert all(i in skipped for i in found.skipped)


def test_an_undecided_endpoint_is_refused() -> None:
    with pytest.raises(ValueError):
        search.next_candidate({0: GOOD})
    with pytest.raises(ValueError):
        search.next_candidate({3: CHANGED})
    with pytest.raises(ValueError):
        search.answer({0: GOOD, 4: CHANGED})  # not done: 1..3 untried
