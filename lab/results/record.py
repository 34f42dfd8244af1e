"""The results directory of one run: written when the run starts, updated per stage, outcome last.

Whatever happens later (a panic, a lost connection, Ctrl-C), what was already learnt is
on disk: metadata.json after every stage, results.json and junit.xml after every suite.
metadata.json is one typed RunMetadata; a field not recorded yet is left out of the file.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import platform
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..core.errors import InfraError
from ..core.files import safe_name, write_json_atomic
from ..core.outcome import Verdict
from . import junit, layout
from .model import SuiteResult


class _NotRecorded:
    """A field the run has not reached yet: absent from metadata.json (null is a value)."""

    def __repr__(self) -> str:
        return "NOT_RECORDED"


NOT_RECORDED: Any = _NotRecorded()


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunMetadata:
    """metadata.json (README, "Results"; tests/test_results_schema.py holds its schema)."""
    run_id: str
    request: dict[str, object]
    started: str = field(default_factory=utc_now)
    host: dict[str, str] = field(default_factory=lambda: {
        "name": platform.node(), "kernel": platform.release(), "python": platform.python_version()})
    stages: dict[str, dict[str, object]] = field(default_factory=dict)
    outcome: str | None = None  # null until the run ends
    # Recorded as the run reaches them:
    target: str = NOT_RECORDED  # `--target` runs: the machine's ssh:// URL
    kernel: dict[str, object] = NOT_RECORDED  # identity (kernel/ident.py describes it)
    target_checks: dict[str, object] = NOT_RECORDED
    image: dict[str, str] = NOT_RECORDED  # path, digest
    prepare_seconds: dict[str, float] = NOT_RECORDED
    lab: dict[str, object] = NOT_RECORDED  # the lab's git commit, dirty
    reproducer: str = NOT_RECORDED
    qemu_version: str | None = NOT_RECORDED  # None: no QEMU (a real machine)
    accelerator: dict[str, object] | None = NOT_RECORDED  # name, reason, probed
    cpus: dict[str, int | None] = NOT_RECORDED  # given (QEMU's -smp), possible, online
    timeouts: dict[str, float] = NOT_RECORDED
    boot_to_ssh_seconds: float = NOT_RECORDED
    ssh_port: int = NOT_RECORDED
    boot: dict[str, object] = NOT_RECORDED  # QEMU runs: cold or restored from a snapshot (vm/snapshot.py)
    bytecode: dict[str, bool] = NOT_RECORDED  # QEMU runs: the last run's bytecode restored / this run's kept
    remote_dir: str = NOT_RECORDED
    suites_at_once: int = NOT_RECORDED  # how many suites the target's runner ran side by side
    coverage: dict[str, object] = NOT_RECORDED  # --coverage: the run's figures (coverage.json has them all)
    dmesg_run_starts_at_line: int | None = NOT_RECORDED
    lava: dict[str, object] = NOT_RECORDED  # `lab lava-run`: the job and what lava-run said
    reason: str = NOT_RECORDED
    finished: str = NOT_RECORDED
    console_excerpt: str = NOT_RECORDED
    warnings: list[str] = NOT_RECORDED  # what the run noticed that weakens what it proves

    def to_json(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not NOT_RECORDED}

    def recorded(self, name: str) -> Any:
        """A field's value, or None if the run has not recorded it."""
        value = getattr(self, name)
        return None if value is NOT_RECORDED else value


def suite_order(names: list[str]) -> Callable[[SuiteResult], int]:
    """A sort key putting suites in the order of `names` (others last)."""
    return lambda suite: names.index(suite.name) if suite.name in names else len(names)


def new_run_id(kernel_label: str) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{safe_name(kernel_label, 40)}-{secrets.token_hex(2)}"


class RunRecord:
    def __init__(self, directory: Path, request: dict[str, object]) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=False)
        self.metadata = RunMetadata(run_id=directory.name, request=request)
        self.suites: list[SuiteResult] = []
        self.save()
        self._save_results()

    @classmethod
    def create(cls, results_root: Path, kernel_label: str, request: dict[str, object]) -> "RunRecord":
        results_root.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            try:
                return cls(results_root / new_run_id(kernel_label), request)
            except FileExistsError:
                continue  # same kernel, same second, same random suffix: draw again
        raise InfraError(f"cannot create a new run directory in {results_root}")

    def save(self) -> None:
        write_json_atomic(self.directory / layout.METADATA, self.metadata.to_json())

    def update(self, **fields: object) -> None:
        """Record fields of the metadata (a misspelt one is an error, not a new key) and save."""
        for name, value in fields.items():
            if not hasattr(self.metadata, name):
                raise AttributeError(f"RunMetadata has no field {name!r}")
            setattr(self.metadata, name, value)
        self.save()

    def warn(self, message: str) -> None:
        """A warning of the run (shown in its summary, kept in metadata.json's `warnings`)."""
        self.update(warnings=[*(self.metadata.recorded("warnings") or []), message])

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage; its status is recorded even when it raises."""
        started = self.start_stage(name)
        try:
            yield
        except BaseException as exc:
            self.end_stage(name, started, str(exc))
            raise
        self.end_stage(name, started)

    def start_stage(self, name: str) -> float:
        """A stage that begins now (one whose end is seen elsewhere: a suite of a series)."""
        self.metadata.stages[name] = {"status": "running"}
        self.save()
        return time.monotonic()

    def end_stage(self, name: str, started: float, error: str | None = None) -> None:
        seconds = round(time.monotonic() - started, 3)
        self.metadata.stages[name] = {"status": "done", "seconds": seconds} if error is None else \
            {"status": "failed", "seconds": seconds, "error": error}
        self.save()

    def add_suite(self, suite: SuiteResult, order: list[str] | None = None) -> None:
        """A suite's result, saved at once; kept in `order` (the requested one: suites side by
        side end in any order), else in the order they came."""
        self.suites.append(suite)
        if order:
            self.suites.sort(key=suite_order(order))
        self._save_results()
        junit.write_merged(self.directory, self.suites)  # after each suite, so a cut-short run has it too

    def _save_results(self) -> None:
        write_json_atomic(self.directory / layout.RESULTS, {
            "run_id": self.directory.name,
            "suites": [s.summary() for s in self.suites],
            "tests": [r.to_json() for s in self.suites for r in s.records],
        })

    def finish(self, verdict: Verdict) -> None:
        self.metadata.outcome = verdict.outcome.value
        self.metadata.reason = verdict.reason
        if verdict.excerpt:
            self.metadata.console_excerpt = verdict.excerpt
        self.metadata.finished = utc_now()
        self.save()
