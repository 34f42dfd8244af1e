"""coverage.json: lines, functions and branches run out of those there are, per file and in all,
for the run and for each suite, from gcovr's JSON traces. Pure."""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1


@dataclass
class Counted:
    hit: int = 0
    total: int = 0

    def add(self, other: "Counted") -> None:
        self.hit += other.hit
        self.total += other.total

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.hit / self.total, 1) if self.total else None

    def to_json(self) -> dict[str, Any]:
        return {"hit": self.hit, "total": self.total, "percent": self.percent}


@dataclass
class FileCoverage:
    lines: Counted = field(default_factory=Counted)
    functions: Counted = field(default_factory=Counted)
    branches: Counted = field(default_factory=Counted)

    def add(self, other: "FileCoverage") -> None:
        self.lines.add(other.lines)
        self.functions.add(other.functions)
        self.branches.add(other.branches)

    def to_json(self) -> dict[str, Any]:
        return {"lines": self.lines.to_json(), "functions": self.functions.to_json(),
                "branches": self.branches.to_json()}


def load_trace(path: Path) -> dict[str, Any]:
    """A gcovr JSON trace, gzipped or not."""
    with (gzip.open(path, "rt") if path.name.endswith(".gz") else path.open()) as handle:
        data = json.load(handle)
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise ValueError(f"{path} is not a gcovr JSON trace")
    return data


def line_counts(trace: dict[str, Any]) -> dict[str, dict[int, int]]:
    """file -> line number -> how many times it ran (a line in several objects: the sum)."""
    counts: dict[str, dict[int, int]] = {}
    for entry in trace["files"]:
        lines = counts.setdefault(str(entry["file"]), {})
        for line in entry.get("lines", []):
            if line.get("gcovr/noncode") or line.get("gcovr/excluded"):
                continue
            number = int(line["line_number"])
            lines[number] = lines.get(number, 0) + int(line.get("count", 0))
    return counts


def file_coverage(trace: dict[str, Any]) -> dict[str, FileCoverage]:
    """Per file: its lines, functions and branches run (each counted once, whatever objects hold it)."""
    lines = line_counts(trace)
    functions: dict[str, dict[tuple[str, int], int]] = {}
    branches: dict[str, dict[tuple[int, int], int]] = {}
    for entry in trace["files"]:
        name = str(entry["file"])
        known = functions.setdefault(name, {})
        for function in entry.get("functions", []):
            key = (str(function.get("demangled_name") or function["name"]), int(function.get("lineno", 0)))
            known[key] = known.get(key, 0) + int(function.get("execution_count", 0))
        taken = branches.setdefault(name, {})
        for line in entry.get("lines", []):
            if line.get("gcovr/excluded"):
                continue
            for index, branch in enumerate(line.get("branches", [])):
                where = (int(line["line_number"]), int(branch.get("branchno", index)))
                taken[where] = taken.get(where, 0) + int(branch.get("count", 0))
    result = {}
    for name in sorted(lines):
        result[name] = FileCoverage(
            Counted(sum(1 for c in lines[name].values() if c > 0), len(lines[name])),
            Counted(sum(1 for c in functions.get(name, {}).values() if c > 0), len(functions.get(name, {}))),
            Counted(sum(1 for c in branches.get(name, {}).values() if c > 0), len(branches.get(name, {}))))
    return result


def functions_run(trace: dict[str, Any]) -> dict[str, dict[str, int]]:
    """file -> function -> how many times it was called."""
    found: dict[str, dict[str, int]] = {}
    for entry in trace["files"]:
        known = found.setdefault(str(entry["file"]), {})
        for function in entry.get("functions", []):
            name = str(function.get("demangled_name") or function["name"])
            known[name] = known.get(name, 0) + int(function.get("execution_count", 0))
    return found


def total(files: dict[str, FileCoverage]) -> FileCoverage:
    whole = FileCoverage()
    for counted in files.values():
        whole.add(counted)
    return whole


def summary(directories: tuple[str, ...], run_trace: dict[str, Any],
            suite_traces: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """coverage.json's content: the run's figures, then each suite's."""
    files = file_coverage(run_trace)

    def section(per_file: dict[str, FileCoverage]) -> dict[str, Any]:
        return {"total": total(per_file).to_json(), "files": {name: c.to_json() for name, c in per_file.items()}}

    return {"format": FORMAT, "directories": list(directories), **section(files),
            "suites": {name: section(file_coverage(trace)) for name, trace in suite_traces.items()}}


def headline(data: dict[str, Any]) -> str:
    """`kernel/bpf: lines 41.2% (3012 of 7311), functions 55.0% (301 of 547), branches ...`."""
    whole = data.get("total", {})
    parts = []
    for what in ("lines", "functions", "branches"):
        counted = whole.get(what, {})
        if counted.get("total"):
            parts.append(f"{what} {counted.get('percent')}% ({counted.get('hit')} of {counted.get('total')})")
    return f"{', '.join(data.get('directories', []))}: {', '.join(parts) or 'nothing counted'}"
