"""What the kernels of one matrix row did differently, beyond the outcome: every property key the
test recorded with another value on one kernel than on another (a key recorded on one kernel and
not on another included), and what each kernel's cell shows for it.

Which keys are compared is `lab compare`'s rule, used as is (report/compare.property_changes):
measurements (times, work done in a time window) are left out there, so two runs of one
kernel show nothing here either.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..report.compare import LONG_VALUE, property_changes, word_changes
from ..results.model import TestRecord

NOT_RECORDED = "(not recorded)"  # the words `lab compare` uses for a key a run did not record
NOT_RUN = "—"  # the matrix's mark for a test a kernel did not run
NOTHING = "(nothing)"  # one side of a changed place that has no words there, as `lab compare` says


@dataclass(frozen=True)
class ValueCell:
    """One kernel's value of one property key."""
    ran: bool  # the kernel ran the test
    value: str | None  # what it recorded; None: not recorded (or not run)
    shown: str  # the value; for a long one, only its words that differ from the reference kernel's

    def to_json(self) -> str | None:
        return self.value


@dataclass(frozen=True)
class PropertyRow:
    """One property key that differs between the kernels that ran the test."""
    key: str
    long: bool  # a value is longer than LONG_VALUE: the cells show changed words, not whole values
    reference: int  # the column the changed words are taken against: the first that recorded the key
    cells: tuple[ValueCell, ...]  # one per matrix column

    @property
    def label(self) -> str:
        return f"{self.key} (changed words)" if self.long else self.key


def _changed_words(reference: str, value: str) -> tuple[str, str]:
    """The reference's words and the value's words at the places they differ, each joined by '; '."""
    words = word_changes(reference, value)
    if not words:
        return "(whitespace differs)", "(whitespace differs)"
    return ("; ".join(w.a or NOTHING for w in words), "; ".join(w.b or NOTHING for w in words))


def _row(key: str, cells: tuple[TestRecord | None, ...], kernels: tuple[str, ...]) -> PropertyRow:
    values = [c.properties.get(key) if c is not None else None for c in cells]
    reference = next(i for i, v in enumerate(values) if v is not None)
    ref_value = values[reference]
    assert ref_value is not None
    long = any(v is not None and len(v) > LONG_VALUE for v in values)
    shown: list[str] = []
    ref_places: list[str] = []  # the reference's words at every place some other kernel differs
    for cell, value in zip(cells, values):
        if cell is None:
            shown.append(NOT_RUN)
        elif value is None:
            shown.append(NOT_RECORDED)
        elif not long:
            shown.append(value or '""')  # an empty value, which is not the same as none recorded
        elif value == ref_value:
            shown.append("")  # the reference itself, or the same as it: filled in below
        else:
            theirs, mine = _changed_words(ref_value, value)
            ref_places.append(theirs)
            shown.append(mine)
    if long:
        same = " / ".join(dict.fromkeys(ref_places)) or ref_value
        shown = [text or (same if i == reference else f"(as {kernels[reference]})") for i, text in enumerate(shown)]
    return PropertyRow(key, long, reference,
                       tuple(ValueCell(c is not None, v, s) for c, v, s in zip(cells, values, shown)))


def differences(cells: tuple[TestRecord | None, ...], kernels: tuple[str, ...]) -> tuple[PropertyRow, ...]:
    """The property keys of one test (its cell per column, kernels naming the columns) that differ
    between the kernels that ran it, in key order.

    A key differs when some kernel's value (or its absence) is not the first kernel's: the union
    of `lab compare`'s changes of the first against each other one."""
    ran = [c for c in cells if c is not None]
    keys = sorted({change.key for other in ran[1:] for change in property_changes(ran[0].properties, other.properties)})
    return tuple(_row(key, cells, kernels) for key in keys)
