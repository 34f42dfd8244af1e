"""A patch series applied, in order, to a copy of a source tree.

The copy is made of hard links (fast, no space): GNU patch writes each changed file anew
and renames it into place, so the pristine tree behind the links is never modified.
A patch that does not apply stops everything with its name and the first failing hunk.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InfraError, UserError


@dataclass(frozen=True)
class Patch:
    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256}


def load_series(paths: list[Path]) -> list[Patch]:
    """The patches, in the order given; a directory stands for its *.patch/*.diff files, sorted."""
    series: list[Patch] = []
    for path in paths:
        if path.is_dir():
            members = sorted(p for p in path.iterdir() if p.suffix in (".patch", ".diff"))
            if not members:
                raise UserError(f"patch directory {path}: no *.patch or *.diff files")
            series.extend(load_series(members))
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"patch {path}: {exc.strerror}") from exc
        if not data.strip():
            raise UserError(f"patch {path}: empty file")
        series.append(Patch(path, hashlib.sha256(data).hexdigest()))
    return series


_FILE = re.compile(r"^(?:checking|patching) file (.+)$")
_HUNK = re.compile(r"^Hunk #(\d+) FAILED at (\d+)")


def first_failure(output: str) -> str:
    """"kernel/bpf/syscall.c hunk #2 (at line 1097)" from patch's dry-run output, or its last line."""
    current = ""
    for line in output.splitlines():
        if file_match := _FILE.match(line):
            current = file_match[1].strip("'")
        elif hunk := _HUNK.match(line):
            return f"{current} hunk #{hunk[1]} (at line {hunk[2]}) does not apply"
        elif "can't find file to patch" in line or "No file to patch" in line:
            return "a file it patches does not exist in this tree"
        elif "Reversed (or previously applied) patch detected" in line:
            return f"{current}: already applied (reversed patch detected)"
        elif "Only garbage was found" in line:
            return "not a patch (only garbage was found)"
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "patch failed with no output"


def _patch(argv: list[str], tree: Path, patch: Patch) -> subprocess.CompletedProcess[str]:
    try:
        with patch.path.open("rb") as handle:
            return subprocess.run(
                ["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch", *argv],
                cwd=tree, stdin=handle, capture_output=True, text=True, check=False,
            )
    except FileNotFoundError as exc:
        raise InfraError("patch is not installed (run `make setup`)") from exc


def apply_series(tree: Path, series: list[Patch]) -> None:
    """Apply each patch to tree; the first that does not apply cleanly is a UserError."""
    for number, patch in enumerate(series, 1):
        # A dry run first, so a failing patch leaves no half-applied files behind.
        dry = _patch(["--dry-run"], tree, patch)
        if dry.returncode != 0:
            raise UserError(f"patch {number}/{len(series)} {patch.name} does not apply: {first_failure(dry.stdout + dry.stderr)}")
        done = _patch([], tree, patch)
        if done.returncode != 0:
            raise UserError(f"patch {number}/{len(series)} {patch.name} failed: {first_failure(done.stdout + done.stderr)}")


def linked_copy(source: Path, dest: Path) -> None:
    """dest becomes a hard-linked copy of source (a real copy across filesystems)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    linked = subprocess.run(["cp", "-al", str(source), str(dest)], capture_output=True, text=True, check=False)
    if linked.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        copied = subprocess.run(["cp", "-a", str(source), str(dest)], capture_output=True, text=True, check=False)
        if copied.returncode != 0:
            raise InfraError(f"cannot copy {source} to {dest}: {copied.stderr.strip()}")
