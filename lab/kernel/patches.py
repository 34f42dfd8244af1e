"""A patch series applied, in order, to a copy of a source tree; and whether it would apply.

The copy is made of hard links (fast, no space): GNU patch writes each changed file anew
and renames it into place, so the pristine tree behind the links is never modified.
A patch that does not apply stops everything with its name and the first failing hunk.

Per-version ports. A series directory may hold `ports/<X.Y>/` and `ports/<X.Y.Z>/`
subdirectories, each a full replacement series for sources of that version: for a source
whose `make kernelversion` is 6.12.117, `ports/6.12.117/` wins over `ports/6.12/` (the most
specific version prefix, compared number by number, so 6.1 never matches 6.12); with no
matching port the directory's own *.patch/*.diff files are the series, exactly as without
ports (same files, same hashes, so cached builds stay valid).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InfraError, UserError

PORTS = "ports"
_PORT_NAME = re.compile(r"^\d+\.\d+(?:\.\d+)?$")
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Patch:
    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256}


def _members(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".patch", ".diff") and p.is_file())


def ports(directory: Path) -> dict[str, Path]:
    """A series directory's ports by version ("6.12" -> ports/6.12); a badly named one is a UserError."""
    root = directory / PORTS
    if not root.is_dir():
        return {}
    found = {}
    for port in sorted(root.iterdir()):
        if not port.is_dir() or not _PORT_NAME.match(port.name):
            raise UserError(f"patch directory {directory}: {PORTS}/{port.name} is not a version directory "
                            "(expected ports/X.Y or ports/X.Y.Z)")
        found[port.name] = port
    return found


def port_for(directory: Path, version: str) -> Path | None:
    """The port of a series directory for a kernel version (its most specific prefix), or None."""
    match = _VERSION.match(version)
    if match is None:
        return None
    numbers = [n for n in match.groups() if n is not None]
    best: tuple[int, Path] | None = None
    for name, port in ports(directory).items():
        parts = name.split(".")
        if parts == numbers[: len(parts)] and (best is None or len(parts) > best[0]):
            best = (len(parts), port)
    return best[1] if best else None


def _series_files(directory: Path, version: str | None) -> list[Path]:
    port = port_for(directory, version) if version is not None else None
    chosen = port or directory
    members = _members(chosen)
    if not members:
        where = f"patch directory {chosen}" if port else f"patch directory {directory}"
        if port is None and version is not None and ports(directory):
            raise UserError(f"{where}: no *.patch or *.diff files and no port for {version} "
                            f"(ports: {', '.join(ports(directory))})")
        raise UserError(f"{where}: no *.patch or *.diff files")
    return members


def load_series(paths: list[Path], version: str | None = None) -> list[Patch]:
    """The patches, in the order given; a directory stands for its *.patch/*.diff files, sorted,
    or for its port for `version` (the source's `make kernelversion`) when it has one."""
    series: list[Patch] = []
    for path in paths:
        if path.is_dir():
            series.extend(load_series(_series_files(path, version)))
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"patch {path}: {exc.strerror}") from exc
        if not data.strip():
            raise UserError(f"patch {path}: empty file")
        series.append(Patch(path, hashlib.sha256(data).hexdigest()))
    return series


def check_series(paths: list[Path]) -> None:
    """Read every series the paths can stand for (a directory's own and each port's) before
    anything is built, so a bad file fails now whatever version it would have been chosen for."""
    for path in paths:
        if not path.is_dir():
            load_series([path])
            continue
        variants = ports(path)
        if _members(path) or not variants:
            load_series(_series_files(path, None))
        for port in variants.values():
            if not _members(port):
                raise UserError(f"patch directory {port}: no *.patch or *.diff files")
            load_series(_members(port))


_FILE = re.compile(r"^(?:checking|patching) file (.+)$")
_HUNK = re.compile(r"^Hunk #(\d+) FAILED at (\d+)")
_INEXACT = re.compile(r"^Hunk #(\d+) succeeded at (\d+)(?: with fuzz (\d+))?(?: \(offset (-?\d+) lines?\))?\.?$")


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


def inexact_hunks(output: str) -> list[str]:
    """"kernel/bpf/syscall.c hunk #2 with fuzz 1, offset 3 lines" for each hunk patch placed
    other than exactly where the patch said."""
    current, found = "", []
    for line in output.splitlines():
        if file_match := _FILE.match(line):
            current = file_match[1].strip("'")
        elif hunk := _INEXACT.match(line):
            how = ([f"fuzz {hunk[3]}"] if hunk[3] else []) + ([f"offset {hunk[4]} lines"] if hunk[4] else [])
            found.append(f"{current} hunk #{hunk[1]} with {', '.join(how) or 'an inexact match'} (at line {hunk[2]})")
    return found


def _patch(argv: list[str], tree: Path, patch: Patch) -> subprocess.CompletedProcess[str]:
    try:
        with patch.path.open("rb") as handle:
            return subprocess.run(
                ["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch", *argv],
                cwd=tree, stdin=handle, capture_output=True, text=True, check=False,
                env={**os.environ, "LC_ALL": "C"},  # the messages parsed above are patch's English ones
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


@dataclass(frozen=True)
class ApplyCheck:
    """Would the series apply to a tree: the first failure (None if it applies) and every hunk
    that applied only with fuzz or at an offset, each named with its patch."""
    failure: str | None
    inexact: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        if self.failure is not None:
            return "does not apply"
        return "with fuzz/offset" if self.inexact else "clean"

    def describe(self) -> str:
        if self.failure is not None:
            return f"does not apply: {self.failure}"
        return f"with fuzz/offset: {'; '.join(self.inexact)}" if self.inexact else "clean"

    def to_json(self) -> dict[str, object]:
        return {"status": self.status, "failure": self.failure, "inexact": list(self.inexact)}


_NAMED = re.compile(r"^(?:--- |\+\+\+ |rename from |rename to |copy from |copy to )(.+)$")


def touched_files(series: list[Patch]) -> set[str]:
    """The tree-relative files (-p1) a series names in its headers."""
    names = set()
    for patch in series:
        for line in patch.path.read_text(errors="replace").splitlines():
            match = _NAMED.match(line)
            if match is None:
                continue
            name = match[1].split("\t")[0].strip().strip('"')
            if name == "/dev/null":
                continue
            if line.startswith(("--- ", "+++ ")):
                name = name.partition("/")[2]  # -p1
            if name and ".." not in Path(name).parts and not name.startswith("/"):
                names.add(name)
    return names


def _sparse_copy(tree: Path, names: set[str], dest: Path) -> None:
    """dest holds hard links to just the files the series touches: patch reads nothing else."""
    for name in names:
        source = tree / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)


def _try_series(tree: Path, series: list[Patch]) -> ApplyCheck:
    inexact: list[str] = []
    for number, patch in enumerate(series, 1):
        where = f"{number}/{len(series)} {patch.name}"
        dry = _patch(["--dry-run"], tree, patch)
        if dry.returncode != 0:
            return ApplyCheck(f"{where}: {first_failure(dry.stdout + dry.stderr).removesuffix(' does not apply')}",
                              tuple(inexact))
        inexact += [f"{where}: {hunk}" for hunk in inexact_hunks(dry.stdout)]
        if number < len(series):  # the next patch is made on top of this one
            done = _patch([], tree, patch)
            if done.returncode != 0:
                return ApplyCheck(f"{where}: {first_failure(done.stdout + done.stderr)}", tuple(inexact))
    return ApplyCheck(None, tuple(inexact))


def check_applies(tree: Path, series: list[Patch], scratch: Path) -> ApplyCheck:
    """Would the series apply to tree, in order? Tried on a linked copy of the files it touches,
    in a temporary directory under scratch (the tree is never written). A failure there for a
    file the copy lacks is tried again on a linked copy of the whole tree, so a header this
    reader did not understand cannot turn into a false "does not apply"."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".apply-check-") as tmp:
        sparse = Path(tmp) / "sparse"
        sparse.mkdir()
        _sparse_copy(tree, touched_files(series), sparse)
        result = _try_series(sparse, series)
        if result.failure is not None and "does not exist in this tree" in result.failure:
            whole = Path(tmp) / "whole"
            linked_copy(tree, whole)
            result = _try_series(whole, series)
        return result


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
