"""How far a child `lab run` has got, read from the files it writes as it goes.

metadata.json names the stage running (or the outcome once there is one); results.json holds
the finished suites' tests; the running suite's `<suite>.log` streams one `"event": "end"`
line per test as the guest finishes it. Every file may be missing or mid-rewrite: the
answer is then simply less precise, never an error.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..results import layout
from ..results.stream import END_EVENT


@dataclass(frozen=True)
class Progress:
    stage: str  # "prepare" until the run directory exists, then a stage name, then "done: <outcome>"
    tests_done: int

    def line(self, kernel: str) -> str:
        return f"[{kernel}] {self.stage}  {self.tests_done} tests done"


def run_directory(root: Path) -> Path | None:
    """The one run directory a child made under its own results root, if it has made it yet."""
    found = sorted(p for p in root.iterdir() if p.is_dir() and (p / layout.METADATA).exists()) if root.is_dir() else []
    return found[-1] if found else None


def _json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ended_in_log(path: Path) -> int:
    try:
        return path.read_text(errors="replace").count(END_EVENT)
    except OSError:
        return 0


def read(root: Path) -> Progress:
    directory = run_directory(root)
    if directory is None:
        return Progress("prepare", 0)
    metadata = _json(directory / layout.METADATA)
    results = _json(directory / layout.RESULTS)
    tests = results.get("tests")
    suites = results.get("suites")
    finished_suites = {s.get("suite") for s in suites if isinstance(s, dict)} if isinstance(suites, list) else set()
    done = len(tests) if isinstance(tests, list) else 0
    stages = metadata.get("stages")
    stages = stages if isinstance(stages, dict) else {}
    running = [name for name, s in stages.items() if isinstance(s, dict) and s.get("status") == "running"]
    if metadata.get("outcome"):
        return Progress(f"done: {metadata['outcome']}", done)
    if running:
        stage = str(running[-1])
        suite = stage.removeprefix("suite:")
        if stage.startswith("suite:") and suite not in finished_suites:
            done += _ended_in_log(layout.suite_log(directory, suite))
        return Progress(stage, done)
    # Booting is not a stage of its own: it is what happens after the accelerator and before ship.
    if not stages:
        return Progress("start", done)
    return Progress("boot" if "ship" not in stages else f"after {list(stages)[-1]}", done)
