"""Which kernels a coverage run can read: the lab's coverage builds (kernel/profiling.py)."""
from __future__ import annotations

from pathlib import Path

from ..core.errors import UserError
from ..kernel import profiling
from ..kernel.build import builds_dir
from ..kernel.spec import BuildSpec, DebianSpec, KernelSpec


def required(spec: KernelSpec, cache: Path) -> Path:
    """The coverage tree of the kernel `spec` names; UserError (before anything starts) for a
    kernel that has no gcov counters to read: a Debian package, a path, a build without --coverage."""
    hint = "build one with `lab kernel build --source ... --coverage`"
    if isinstance(spec, DebianSpec):
        raise UserError(f"--coverage: {spec.text} is a Debian kernel, built without gcov profiling; {hint}")
    if not isinstance(spec, BuildSpec):
        raise UserError(f"--coverage needs a kernel the lab built with --coverage (build:<id>), not a path; {hint}")
    entry = builds_dir(cache) / spec.build_id
    if not (entry / "kernel.json").is_file():
        return entry / profiling.MATERIAL / "tree"  # an unknown build: fetching it says so in its own words
    tree = profiling.material(entry)
    if tree is None:
        raise UserError(f"--coverage: build:{spec.build_id} was built without --coverage (no gcov profiling); {hint}")
    return tree
