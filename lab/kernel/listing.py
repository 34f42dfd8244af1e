"""`lab kernel list`: every Debian kernel image and linux-source version the host's apt lists hold,
newest first, each with the exact spec that pins it and whether the lab's cache already has it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core import apt
from .acquire import debian_entry as kernel_entry_dir
from .acquire import kernel_entry
from .source import debian_entry as source_entry_dir


@dataclass(frozen=True)
class Listed:
    kind: str  # "kernel" (for --kernel) or "source" (for --source)
    series: str
    package: apt.DebianPackage
    newest: bool  # what debian:<series> names today
    cached: bool

    @property
    def spec(self) -> str:
        return f"debian:{self.package.version}"

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "series": self.series, "spec": self.spec,
                "abi_spec": f"debian:{self.package.abi}" if self.package.abi else None,
                "package": self.package.package, "version": self.package.version,
                "newest": self.newest, "cached": self.cached}


def _source_cached(cache: Path, package: apt.DebianPackage) -> bool:
    return (source_entry_dir(cache, package.package, package.version) / "source.json").is_file()


def _kernel_cached(cache: Path, package: apt.DebianPackage) -> bool:
    return kernel_entry(kernel_entry_dir(cache, package.package, package.version))[0] is not None


def list_all(cache: Path, flavour: str = "cloud-amd64") -> list[Listed]:
    """Kernels then sources, each by series (newest series first) and version (newest first)."""
    series_list = apt.series_in_lists(flavour)
    if not series_list:
        apt.check_lists()  # empty lists are the host's problem (infra-error), not "no kernels"
    found: list[Listed] = []
    for series in series_list:
        for index, package in enumerate(apt.kernel_packages(series, flavour)):
            found.append(Listed("kernel", series, package, index == 0, _kernel_cached(cache, package)))
    for series in series_list:
        for index, package in enumerate(apt.source_packages(series)):
            found.append(Listed("source", series, package, index == 0, _source_cached(cache, package)))
    return found


def _status(item: Listed) -> str:
    return ", ".join([*(["cached"] if item.cached else []), *([f"newest (debian:{item.series})"] if item.newest else [])])


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths)).rstrip() for row in rows]


def render(listed: list[Listed], flavour: str = "cloud-amd64") -> str:
    """Two tables: kernel images (for --kernel) and sources (for --source)."""
    kernels = [item for item in listed if item.kind == "kernel"]
    sources = [item for item in listed if item.kind == "source"]
    lines: list[str] = []
    lines.append(f"Debian kernels ({flavour}), for --kernel:" if kernels else "Debian kernels: none in the host's apt lists")
    if kernels:
        lines += _table([("spec", "or", "package", ""),
                         *((k.spec, f"debian:{k.package.abi}", k.package.package, _status(k)) for k in kernels)])
    lines.append("")
    lines.append("Debian kernel sources, for --source:" if sources else "Debian kernel sources: none in the host's apt lists")
    if sources:
        lines += _table([("spec", "package", ""), *((s.spec, s.package.package, _status(s)) for s in sources)])
    lines.append("")
    lines.append("debian:X.Y is the newest of a series; an exact spec pins one package "
                 "(for a kernel, by package version or ABI name).")
    return "\n".join(lines)
