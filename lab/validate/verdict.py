"""Each version's verdict, and `lab validate`'s exit code from them.

- regressed: the patched build fails where the base built, or base vs patched has a regression
  as `lab compare` defines it (newly failing tests, a worse run outcome, ...);
- no regression: both runs reached a verdict about the kernel and the comparison found none;
- does not apply: the series (or the version's port) does not apply to this source; shown, and
  not counted as a regression, since there is no patched kernel to judge;
- undecided: no verdict could be reached: the source could not be had, the base did not build,
  a run ended infra-error or interrupted (or left no run), the host failed.

Exit 1 if any version regressed; else 8 (infra-error) if any is undecided, since "no
regression" would be a claim nobody checked; else 0 (also when the series applies nowhere).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.outcome import Outcome, exit_code
from ..report.compare import OUTCOME_RANK
from .pipeline import SIDES, VersionState

NO_REGRESSION = "no regression"
REGRESSED = "regressed"
DOES_NOT_APPLY = "does not apply"
UNDECIDED = "undecided"
KINDS = (NO_REGRESSION, REGRESSED, DOES_NOT_APPLY, UNDECIDED)


@dataclass(frozen=True)
class Verdict:
    kind: str
    reason: str


def _judged(outcome: str | None) -> bool:
    """True for a run outcome that says something about the kernel (compare.OUTCOME_RANK)."""
    try:
        return outcome is not None and Outcome(outcome) in OUTCOME_RANK
    except ValueError:
        return False


def verdict(state: VersionState) -> Verdict:
    if state.problem:
        return Verdict(UNDECIDED, state.problem)
    if state.applies is None:
        return Verdict(UNDECIDED, "not reached (interrupted)")
    if state.applies.failure is not None:
        return Verdict(DOES_NOT_APPLY, state.applies.describe())
    base, patched = (state.builds.get(side) for side in SIDES)
    if base is None or (base.error is None and patched is None):
        return Verdict(UNDECIDED, "not built (interrupted)")
    if base.error is not None:
        return Verdict(UNDECIDED, f"the base does not build: {base.error}")
    assert patched is not None
    if patched.error is not None:
        if patched.infra:
            return Verdict(UNDECIDED, f"the patched build: {patched.error}")
        return Verdict(REGRESSED, f"the patched build fails where the base built: {patched.error}")
    result = state.comparison
    if result is None:
        return Verdict(UNDECIDED, "the runs did not finish (interrupted)")
    unjudged = [f"{side} run {outcome or 'unfinished'}" for side, outcome in
                zip(SIDES, (result.a.outcome, result.b.outcome)) if not _judged(outcome)]
    if unjudged:
        return Verdict(UNDECIDED, f"{', '.join(unjudged)}: that says nothing about the kernel")
    if result.regressions:
        return Verdict(REGRESSED, f"regressed: {', '.join(result.regressions)}")
    return Verdict(NO_REGRESSION, NO_REGRESSION)


def exit_status(verdicts: list[Verdict]) -> int:
    kinds = {v.kind for v in verdicts}
    if REGRESSED in kinds:
        return 1
    if UNDECIDED in kinds:
        return exit_code(Outcome.INFRA_ERROR)
    return 0
