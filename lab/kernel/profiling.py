"""A coverage build (`lab kernel build --coverage`): gcov profiling for the directories the
suites target, and what the host needs afterwards to turn the guest's counters into coverage.

Profiling is asked for the kbuild way, `GCOV_PROFILE := y` in the directory's Makefile, written
into the build's linked copy of the tree (its hard link broken first: the cached source is never
written). The gcc notes files (.gcno) and the profiled sources are kept in the build's entry,
laid out as in the tree (sources under `tree/`, notes under `tree/lab-obj/`), so that the
relative source names gcc recorded (`../kernel/bpf/syscall.c`, from the object directory)
resolve there as they did at build time.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..core.errors import UserError
from ..core.paths import KERNEL_CONFIGS_DIR
from ..core.log import Log

FRAGMENT = KERNEL_CONFIGS_DIR / "coverage.config"
# The map code the suites run: syscall.c, hashtab.c, arraymap.c, inode.c, ...
DIRECTORIES = ("kernel/bpf",)
MATERIAL = "coverage"  # in builds/<id>/: tree/<dir>/*.[ch] and tree/lab-obj/<dir>/*.gcno
OBJ = "lab-obj"  # the object directory's name inside the tree (kernel/build.py builds there)
MARK = "\n# bpf-kernel-lab: coverage build\nGCOV_PROFILE := y\n"


def profile(tree: Path, log: Log) -> None:
    """Turn gcov profiling on for DIRECTORIES in `tree`, a linked copy."""
    for directory in DIRECTORIES:
        makefile = tree / directory / "Makefile"
        if not makefile.is_file():
            raise UserError(f"--coverage: this tree has no {directory}/Makefile to profile")
        text = makefile.read_text()
        makefile.unlink()  # the link to the cached tree goes; the copy is this build's alone
        makefile.write_text(text + MARK)
    log(f"build: gcov profiling for {', '.join(DIRECTORIES)}")


def _dependencies(obj: Path, directory: str) -> set[str]:
    """Every file the directory's objects were compiled from, as kbuild's .<object>.cmd files list
    them: `../include/linux/bpf.h` (the tree's, relative to the object directory) and
    `include/generated/autoconf.h` (the object directory's own)."""
    found: set[str] = set()
    for command in (obj / directory).rglob(".*.o.cmd"):
        for line in command.read_text(errors="replace").splitlines():
            if line.startswith("source_") and ":=" in line:
                line = line.split(":=", 1)[1]  # an object built from elsewhere (relo_core.o: tools/lib/bpf/)
            name = line.strip().removesuffix("\\").strip()
            if name and not name.startswith(("$(", "deps_", "cmd_", "source_", "#")) and ":" not in name \
                    and name.endswith((".c", ".h")):
                found.add(name)
    return found


def keep_material(tree: Path, obj: Path, staging: Path) -> int:
    """Copy the profiled sources, every header they include and their notes into the build's
    entry; how many notes files. gcov opens each source a notes file names (headers' inline
    functions count too), and without them gcovr cannot tell where a file belongs."""
    kept = staging / MATERIAL / "tree"
    notes = 0
    for directory in DIRECTORIES:
        sources = {f"../{path.relative_to(tree)}" for path in (tree / directory).rglob("*")
                   if path.suffix in (".c", ".h") and path.is_file()}
        for name in sorted(sources | _dependencies(obj, directory)):
            source = (obj / name).resolve()
            if not source.is_file() or not source.is_relative_to(tree.resolve()):
                continue
            target = kept / source.relative_to(tree.resolve())
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        for note in sorted((obj / directory).rglob("*.gcno")):
            target = kept / OBJ / note.relative_to(obj)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(note, target)
            notes += 1
    return notes


def material(build_dir: Path) -> Path | None:
    """A build entry's coverage tree, if it is a coverage build."""
    tree = build_dir / MATERIAL / "tree"
    return tree if (tree / OBJ).is_dir() else None

