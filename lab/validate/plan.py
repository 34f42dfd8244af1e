"""What `lab validate` was asked to do: the versions (sources) and the series, checked whole
before the first build, so bad input is one line and exit 2 with nothing fetched or built.

The series each version gets is chosen once its source is there (kernel/patches.py: a series
directory's port for the source's `make kernelversion`, else its own patches); every series a
directory can stand for, its ports included, is read here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from ..core.files import safe_name
from ..kernel import build as kernel_build
from ..kernel import source as ksource


@dataclass(frozen=True)
class Version:
    """One source to validate the series on, numbered from 1 in the order given."""
    index: int
    source: str  # as the user gave it
    spec: ksource.SourceSpec

    @property
    def directory_name(self) -> str:
        return f"{self.index}-{safe_name(self.source, 60)}"


@dataclass(frozen=True)
class Plan:
    versions: tuple[Version, ...]
    patches: tuple[Path, ...]
    fragments: tuple[Path, ...]
    coverage: bool = False  # --coverage: the patched kernel is a coverage build, its runs --coverage

    def request(self, version: Version, patched: bool) -> kernel_build.BuildRequest:
        """The base build (same fragments, no patches) or the patched one (with --coverage, built
        with gcov profiling: only its changed lines are measured, so the base stays a plain build)."""
        return kernel_build.BuildRequest(version.spec, self.fragments, self.patches if patched else (),
                                         coverage=self.coverage and patched)


def make_plan(sources: list[str], patches: list[str], fragments: list[str], coverage: bool = False) -> Plan:
    """The plan, or a UserError naming the first bad input; nothing is downloaded or unpacked."""
    if not patches:
        raise UserError("validate needs at least one --patch (the base is the source without them)")
    seen = set()
    for source in sources:
        if source in seen:
            raise UserError(f"validate: --source {source} is given twice")
        seen.add(source)
    versions = tuple(Version(index, source, ksource.parse_source_spec(source)) for index, source in enumerate(sources, 1))
    plan = Plan(versions, tuple(Path(p).expanduser() for p in patches), tuple(Path(f).expanduser() for f in fragments),
                coverage)
    # Every patch (and port) and fragment is read now: the base builds must not be the ones to find a typo.
    kernel_build.check_request(plan.request(versions[0], patched=True))
    for version in versions:
        ksource.check(version.spec)  # a Debian version the apt lists do not hold, a tree that is no kernel tree
    return plan
