"""The results directory of one run: written when the run starts, updated per stage, outcome last.

Whatever happens later (a panic, a lost connection, Ctrl-C), what was already learnt is
on disk: metadata.json after every stage, results.json and junit.xml after every suite.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import secrets
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from . import junit
from ..core.errors import InfraError
from ..core.outcome import Outcome
from .model import SuiteResult


def new_run_id(kernel_label: str) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in ".-" else "-" for c in kernel_label)[:40]
    return f"{stamp}-{safe}-{secrets.token_hex(2)}"


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)  # a reader never sees half a file


class RunRecord:
    def __init__(self, directory: Path, request: dict[str, object]) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=False)
        self.metadata: dict[str, object] = {
            "run_id": directory.name,
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "request": request,
            "host": {"name": platform.node(), "kernel": platform.release(), "python": platform.python_version()},
            "stages": {},
            "outcome": None,
        }
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
        _write_json(self.directory / "metadata.json", self.metadata)

    def set(self, key: str, value: object) -> None:
        self.metadata[key] = value
        self.save()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage; its status is recorded even when it raises."""
        stages = self.metadata["stages"]
        assert isinstance(stages, dict)
        stages[name] = {"status": "running"}
        self.save()
        started = time.monotonic()
        try:
            yield
        except BaseException as exc:
            stages[name] = {"status": "failed", "seconds": round(time.monotonic() - started, 3), "error": str(exc)}
            self.save()
            raise
        stages[name] = {"status": "done", "seconds": round(time.monotonic() - started, 3)}
        self.save()

    def add_suite(self, suite: SuiteResult) -> None:
        self.suites.append(suite)
        self._save_results()
        junit.write_merged(self.directory, self.suites)  # after each suite, so a cut-short run has it too

    def _save_results(self) -> None:
        _write_json(self.directory / "results.json", {
            "run_id": self.directory.name,
            "suites": [s.summary() for s in self.suites],
            "tests": [r.to_json() for s in self.suites for r in s.records],
        })

    def finish(self, outcome: Outcome, reason: str, excerpt: str = "") -> None:
        self.metadata["outcome"] = outcome.value
        self.metadata["reason"] = reason
        if excerpt:
            self.metadata["console_excerpt"] = excerpt
        self.metadata["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.save()
