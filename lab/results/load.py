"""The one reader of results directories: `lab report`, `lab compare`, `lab matrix` and the
LAVA read-back all see a run through load_run, with the same checks and the same messages.

A run is metadata.json (optional: a copied results.json alone still loads) and results.json;
tests are keyed by (suite, name), and a key seen twice is refused, since matching two runs by
it would then be a guess.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from ..core.outcome import Outcome
from . import layout
from .model import CLASS_OF, SuiteResult, TestRecord

Key = tuple[str, str]  # (suite, name)


@dataclass(frozen=True)
class LoadedRun:
    directory: Path
    metadata: dict[str, object]
    tests: dict[Key, TestRecord]
    suites: list[SuiteResult]  # results.json's suite summaries, each with its tests, in run order

    @property
    def run_id(self) -> str:
        return str(self.metadata.get("run_id") or self.directory.name)

    @property
    def outcome(self) -> str | None:
        value = self.metadata.get("outcome")
        return str(value) if value is not None else None

    @property
    def passed(self) -> bool:
        return self.outcome == Outcome.PASSED.value

    @property
    def reason(self) -> str:
        return str(self.metadata.get("reason") or "")

    @property
    def kernel(self) -> dict[str, object]:
        kernel = self.metadata.get("kernel")
        return kernel if isinstance(kernel, dict) else {}


def _fail(path: Path, why: str) -> UserError:
    return UserError(f"run {path}: {why}")


def _read_json(path: Path, run: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(run, f"cannot read {path.name}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise _fail(run, f"{path.name} is not valid JSON ({exc})") from None


def _test_record(raw: object, index: int, run: Path) -> TestRecord:
    if not isinstance(raw, dict):
        raise _fail(run, f"results.json: tests[{index}] is not an object")
    suite, name, outcome = raw.get("suite"), raw.get("name"), raw.get("outcome")
    if not isinstance(suite, str) or not isinstance(name, str) or not suite or not name:
        raise _fail(run, f"results.json: tests[{index}] has no suite and name")
    if outcome not in CLASS_OF:
        raise _fail(run, f"results.json: {suite}/{name}: unknown outcome {outcome!r}")
    properties = raw.get("properties") or {}
    if not isinstance(properties, dict):
        raise _fail(run, f"results.json: {suite}/{name}: properties is not an object")
    try:
        duration = float(raw.get("duration") or 0.0)
    except (TypeError, ValueError):
        duration = 0.0
    return TestRecord(suite, name, str(outcome), duration, str(raw.get("message") or ""),
                      str(raw.get("skip_reason") or ""), {str(k): str(v) for k, v in properties.items()})


def _suite(summary: object, records: list[TestRecord], directory: Path) -> SuiteResult:
    if not isinstance(summary, dict) or not isinstance(summary.get("suite"), str):
        raise _fail(directory, "results.json: a suite without a name")
    try:
        wall = float(summary.get("wall_seconds") or 0.0)
    except (TypeError, ValueError):
        raise _fail(directory, f"results.json: suite {summary['suite']}: wall_seconds is not a number") from None
    rc = summary.get("pytest_rc")
    properties = summary.get("properties") or {}
    return SuiteResult(summary["suite"], records, wall, rc if isinstance(rc, int) else None,
                       str(summary.get("error") or ""),
                       {str(k): str(v) for k, v in properties.items()} if isinstance(properties, dict) else {})


def resolve(arg: str, results_root: Path | None = None) -> Path:
    """A run directory from a path, a results.json in one, or a bare run id under the results root."""
    path = Path(arg)
    if path.name == layout.RESULTS and path.is_file():
        return path.parent
    if not path.exists() and results_root is not None and len(path.parts) == 1 and (results_root / arg).is_dir():
        return results_root / arg
    return path


def load_run(arg: str | Path, results_root: Path | None = None) -> LoadedRun:
    """A run directory (or a run id under results_root); UserError if it is not a readable run."""
    directory = resolve(str(arg), results_root)
    if not directory.is_dir():
        raise _fail(directory, "no such directory" if not directory.exists() else "not a directory")
    results_path = directory / layout.RESULTS
    if not results_path.is_file():
        raise _fail(directory, "no results.json (not a run directory?)")
    results = _read_json(results_path, directory)
    if not isinstance(results, dict) or not isinstance(results.get("tests"), list):
        raise _fail(directory, "results.json has no list of tests")
    tests: dict[Key, TestRecord] = {}
    for index, raw in enumerate(results["tests"]):
        test = _test_record(raw, index, directory)
        if (test.suite, test.name) in tests:
            raise _fail(directory, f"results.json: {test.suite}/{test.name} appears twice")
        tests[(test.suite, test.name)] = test
    # metadata.json is written before the guest boots, but a copied results.json alone
    # still loads: the run then has no kernel or outcome.
    metadata: dict[str, object] = {}
    if (directory / layout.METADATA).exists():
        raw = _read_json(directory / layout.METADATA, directory)
        if not isinstance(raw, dict):
            raise _fail(directory, "metadata.json is not an object")
        metadata = raw
    summaries = results.get("suites")
    if not isinstance(summaries, list):
        raise _fail(directory, "results.json has no list of suites")
    records = list(tests.values())
    suites = [_suite(s, [r for r in records if isinstance(s, dict) and r.suite == s.get("suite")], directory)
              for s in summaries]
    # A test of a suite with no summary would otherwise be silently left out of a table.
    named = {s.name for s in suites}
    for stray in sorted({r.suite for r in records} - named):
        suites.append(SuiteResult(stray, [r for r in records if r.suite == stray], 0.0))
    return LoadedRun(directory, metadata, tests, suites)
