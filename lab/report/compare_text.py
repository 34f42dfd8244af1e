"""`lab compare` output: the two runs, one section per kind of change, a summary line, a verdict."""
from __future__ import annotations

import json

from ..results.load import LoadedRun as Run
from .compare import CATEGORIES, Change, Comparison, PropertyChange, to_json

TITLES = {
    "newly_failing": "newly failing (regressions)",
    "newly_passing": "newly passing",
    "newly_skipped": "newly skipped",
    "behaviour_changed": "behaviour changed (same outcome, other kernel behaviour recorded)",
    "added": "added (a failing one is a regression)",
    "removed": "removed (one that passed in A is a regression)",
}
SHORT = 100  # a message or a value is cut here: the full text is in the run's results.json


def _short(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= SHORT else line[: SHORT - 3] + "..."


def _outcome(value: str | None) -> str:
    return value if value is not None else "unfinished"


def _decoded(value: object) -> object:
    # A built kernel's identity holds its source, patches and fragments as JSON strings.
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            pass
    return value


def _names(value: object) -> str:
    """A patch or fragment list (or a source) as names: 'a.patch, b.patch'."""
    value = _decoded(value)
    names = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict):
            item = (item.get("name") or item.get("spec") or item.get("path")
                    or json.dumps(item, sort_keys=True))
        names.append(str(item))
    return ", ".join(names)


def kernel_line(run: Run) -> str:
    kernel = run.kernel
    request = run.metadata.get("request")
    requested = request.get("kernel") if isinstance(request, dict) else None
    release = kernel.get("release") or "unknown release"
    details = [str(kernel.get("spec") or kernel.get("origin") or requested or "unknown origin")]
    if kernel.get("package"):
        details.append(f"{kernel['package']} {kernel.get('version', '')}".rstrip())
    if kernel.get("image_sha256"):
        details.append(f"image {str(kernel['image_sha256'])[:12]}")
    if kernel.get("config_sha256"):
        details.append(f"config {str(kernel['config_sha256'])[:12]}")
    for key in ("source", "patches", "fragments"):
        if _decoded(kernel.get(key)):
            details.append(f"{key}: {_names(kernel[key])}")
    return f"{release} ({'; '.join(details)})"


def run_header(label: str, run: Run) -> list[str]:
    outcome = _outcome(run.outcome) + (f" ({run.reason})" if run.reason else "")
    return [f"{label}: {run.directory}",
            f"   kernel:  {kernel_line(run)}",
            f"   outcome: {outcome}; {len(run.tests)} tests"]


def outcome_line(result: Comparison) -> str:
    change = result.outcome
    if change.verdict == "same":
        return f"run outcome: {_outcome(change.a)} in both"
    why = {
        "worse": "worse: a regression",
        "better": "better",
        "different": "different, as bad",
        "not comparable": "not comparable: an unfinished, interrupted or infra-error run says nothing about the kernel",
        "flaky": "flaky: the runs of one side did not all end the same, so this is not counted",
    }[change.verdict]
    return f"run outcome: {_outcome(change.a)} -> {_outcome(change.b)} ({why})"


def property_line(change: PropertyChange) -> str:
    if change.words:
        places = "; ".join(f"{w.a or '(nothing)'} -> {w.b or '(nothing)'}" for w in change.words)
        return f"{change.key} (changed words): {places}"
    if change.a is not None and change.b is not None and change.a.split() == change.b.split():
        return f"{change.key}: only whitespace differs"
    a = _short(change.a) if change.a is not None else "(not recorded)"
    b = _short(change.b) if change.b is not None else "(not recorded)"
    return f"{change.key}: {a} -> {b}"


def change_line(category: str, change: Change) -> str:
    name = f"{change.suite}/{change.name}"
    a, b = change.a, change.b
    if b is None:
        assert a is not None
        return f"{name}: was {a.outcome}" + ("  [regression: it passed in A]" if change.regression else "")
    if a is None:
        line = f"{name}: {b.outcome}"
    elif category == "behaviour_changed":
        line = f"{name} ({b.outcome})"
    else:
        line = f"{name}: {a.outcome} -> {b.outcome}"
    # What B said about it: why it failed or why it was skipped.
    if b.outcome_class == "fail" and b.message:
        line += f": {_short(b.message)}"
    elif b.outcome_class == "skip" and b.skip_reason:
        line += f": {_short(b.skip_reason)}"
    if a is None and change.regression:
        line += "  [regression]"
    return line


def _suites_missing(changes: list[Change], other: Run) -> set[str]:
    """Suites of these changes that have no test at all in the other run."""
    return {c.suite for c in changes} - {suite for suite, _ in other.tests}


def whole_suites(category: str, changes: list[Change], result: Comparison) -> list[str]:
    """One line per suite that ran in one run only, instead of one per test."""
    other, label = (result.a, "A") if category == "added" else (result.b, "B")
    lines = []
    for suite in sorted(_suites_missing(changes, other)):
        tests = [c for c in changes if c.suite == suite]
        line = f"{suite}/*: all {len(tests)} tests (the suite did not run in {label})"
        regressions = sum(1 for c in tests if c.regression)
        if regressions:
            line += f"  [regression: {regressions} " + ("failed in B]" if category == "added" else "passed in A]")
        lines.append(line)
    return lines


def summary_line(result: Comparison) -> str:
    line = (f"compared {result.compared} tests: {len(result.newly_failing)} newly failing, "
            f"{len(result.newly_passing)} newly passing, {len(result.newly_skipped)} newly skipped, "
            f"{len(result.behaviour_changed)} behaviour changed, {len(result.added)} added, "
            f"{len(result.removed)} removed")
    quiet = []
    if result.failing_in_both:
        quiet.append(f"{result.failing_in_both} failing in both")
    if result.skip_reason_changed:
        quiet.append(f"{result.skip_reason_changed} skipped in both for another reason")
    return line + (f" ({', '.join(quiet)})" if quiet else "")


def render(result: Comparison) -> str:
    lines = [*run_header("A", result.a), *run_header("B", result.b), outcome_line(result)]
    for category in CATEGORIES:
        changes = result.category(category)
        if not changes:
            continue
        lines += ["", f"{TITLES[category]}: {len(changes)}"]
        if category in ("added", "removed"):
            lines += ["  " + line for line in whole_suites(category, changes, result)]
            whole = _suites_missing(changes, result.a if category == "added" else result.b)
            changes = [c for c in changes if c.suite not in whole]
        for change in changes:
            lines.append("  " + change_line(category, change))
            lines += ["      " + property_line(p) for p in change.properties]
    if result.flaky:
        lines += ["", f"flaky (outcome or behaviour differs between runs of one kernel; not counted): {len(result.flaky)}"]
        lines += [f"  {t.suite}/{t.name}: " + "; ".join(f"{side} {counts}" for side, counts in (("A", t.a), ("B", t.b)) if counts)
                  for t in result.flaky]
    regressions = result.regressions
    lines += ["", summary_line(result),
              f"regression: {', '.join(regressions)}" if regressions else "no regression"]
    return "\n".join(lines)


def render_json(result: Comparison) -> str:
    return json.dumps(to_json(result), indent=2)
