"""lab.outcome: one exit code per outcome, 2 kept for user errors."""
from __future__ import annotations

from lab.core.outcome import EXIT_CODES, USER_ERROR_EXIT, Outcome, exit_code


def test_every_outcome_has_an_exit_code() -> None:
    assert set(EXIT_CODES) == set(Outcome)
    for outcome in Outcome:
        assert exit_code(outcome) == EXIT_CODES[outcome]


def test_exit_codes_are_distinct() -> None:
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)


def test_two_is_reserved_for_user_errors() -> None:
    assert USER_ERROR_EXIT == 2
    assert 2 not in EXIT_CODES.values()


def test_only_passed_is_zero_and_codes_fit_a_shell_status() -> None:
    assert [o for o in Outcome if exit_code(o) == 0] == [Outcome.PASSED]
    assert all(0 <= code <= 255 for code in EXIT_CODES.values())
    assert exit_code(Outcome.INTERRUPTED) == 130  # what a shell reports for SIGINT


def test_outcome_values_are_distinct_strings() -> None:
    values = [o.value for o in Outcome]
    assert len(set(values)) == len(values)
    assert all(v == v.lower() and " " not in v for v in values)
