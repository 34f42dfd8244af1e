"""Parse what the user asked for (`debian:6.1`, `build:<id>`, a kernel image path) into a typed spec. Pure."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError

DEFAULT_KERNEL = "debian:6.1"


@dataclass(frozen=True)
class DebianSpec:
    """A Debian kernel package of one upstream series (6.1, 6.12): the newest the apt lists hold,
    or exactly one, named by its package version (6.1.176-1), its ABI name (6.1.0-53) or an
    upstream version (6.1.192: the newest Debian revision of it)."""

    series: str
    flavour: str = "cloud-amd64"  # cloud: NVMe and ext4 built in, small, boots fast
    exact: str | None = None  # None: the newest of the series

    @property
    def text(self) -> str:
        """The spec as the user writes it."""
        suffix = "" if self.flavour == DebianSpec.flavour else f":{self.flavour}"
        return f"debian:{self.exact or self.series}{suffix}"


@dataclass(frozen=True)
class PathSpec:
    """A local bzImage/vmlinuz, optionally with its modules directory and config file."""

    image: Path
    modules: Path | None = None
    config: Path | None = None


@dataclass(frozen=True)
class BuildSpec:
    """A kernel built by `lab kernel build`, named by its build id."""

    build_id: str


KernelSpec = DebianSpec | PathSpec | BuildSpec
_BUILD = re.compile(r"^build:(?P<id>[A-Za-z0-9][A-Za-z0-9.+_-]*)$")

# debian:6.1, debian:6.1.176-1, debian:6.1.0-53, debian:6.12.117-1~deb12u1, each optionally :FLAVOUR.
DEBIAN_VERSION = r"(?P<series>\d+\.\d+)(?P<rest>\.\d[0-9A-Za-z.+~-]*)?"
_DEBIAN = re.compile(rf"^debian:{DEBIAN_VERSION}(?::(?P<flavour>[a-z0-9-]+))?$")


def parse_kernel_spec(text: str, modules: str | None = None, config: str | None = None) -> KernelSpec:
    """`debian:SERIES[:FLAVOUR]`, or a path (anything with a `/` or an existing file)."""
    match = _DEBIAN.match(text)
    if match:
        if modules or config:
            raise UserError(f"--modules/--config apply to a kernel path, not to {text}")
        exact = match["series"] + match["rest"] if match["rest"] else None
        return DebianSpec(match["series"], match["flavour"] or DebianSpec.flavour, exact)
    if build := _BUILD.match(text):
        if modules or config:
            raise UserError(f"--modules/--config apply to a kernel path, not to {text}")
        return BuildSpec(build["id"])
    if text.startswith("build:"):
        raise UserError(f"bad build spec {text!r}: expected build:<id> as `lab kernel build` prints it")
    if text.startswith("debian:"):
        raise UserError(f"bad Debian kernel spec {text!r}: expected debian:MAJOR.MINOR or an exact package "
                        "version, e.g. debian:6.1, debian:6.1.176-1 or debian:6.1.0-53")
    if "/" in text or Path(text).exists():
        return PathSpec(
            Path(text).expanduser(),
            Path(modules).expanduser() if modules else None,
            Path(config).expanduser() if config else None,
        )
    raise UserError(f"unknown kernel {text!r}: use debian:6.1, debian:6.12, build:<id> or a path to a bzImage")
