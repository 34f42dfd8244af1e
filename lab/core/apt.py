"""The host's apt: its configured Debian sources, package resolution and download.

The mirror is always read from the host's apt configuration (or $LAB_APT_SOURCES, a
sources file), never written into the repository.
"""
from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import InfraError, UserError

APT_DIR = Path("/etc/apt")


@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str
    components: tuple[str, ...]

    def one_line(self) -> str:
        return f"deb {self.uri} {self.suite} {' '.join(self.components)}"


def _parse_one_line(text: str) -> list[AptSource]:
    sources = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        words = line.split()[1:]
        if words and words[0].startswith("["):  # options such as [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words.pop(0)
            words.pop(0)
        if len(words) >= 3:
            sources.append(AptSource(words[0], words[1], tuple(words[2:])))
    return sources


def _parse_deb822(text: str) -> list[AptSource]:
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[0].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                sources.append(AptSource(uri, suite, tuple(fields.get("components", "").split())))
    return sources


def parse_sources_file(path: Path) -> list[AptSource]:
    text = path.read_text()
    return _parse_deb822(text) if path.suffix == ".sources" else _parse_one_line(text)


def host_codename(os_release: Path = Path("/etc/os-release")) -> str:
    for line in os_release.read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise InfraError("cannot tell the host's Debian release: no VERSION_CODENAME in /etc/os-release")


def _is_debian_archive(uri: str) -> bool:
    """Debian's archive and its mirrors are laid out as .../debian and .../debian-security."""
    return uri.rstrip("/").rsplit("/", 1)[-1] in ("debian", "debian-security")


def debian_sources(codename: str, apt_dir: Path = APT_DIR) -> list[AptSource]:
    """The host's sources for this Debian release (main, -updates, -security), nothing third-party.

    $LAB_APT_SOURCES names a sources file (one-line or deb822) to use instead.
    """
    override = os.environ.get("LAB_APT_SOURCES")
    if override and not Path(override).is_file():
        raise UserError(f"$LAB_APT_SOURCES {override}: no such sources file")
    files = [Path(override)] if override else [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    found: list[AptSource] = []
    for path in files:
        if path.is_file() and path.suffix in (".list", ".sources"):
            found += parse_sources_file(path)
    wanted = {codename, f"{codename}-updates", f"{codename}-security"}
    chosen = [s for s in found if s.suite in wanted and "main" in s.components
              and (override or _is_debian_archive(s.uri))]
    if not any(s.suite == codename for s in chosen):
        where = override or str(apt_dir)
        raise InfraError(f"no apt source for Debian {codename} main in {where}; set LAB_APT_SOURCES to a sources file")
    return chosen


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise InfraError(f"{argv[0]} is not installed (run `make setup`)") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise InfraError(f"{' '.join(argv[:3])} failed: {tail[0]}")
    return done.stdout


def _compare_versions(a: str, b: str) -> int:
    if a == b:
        return 0
    lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0
    return -1 if lt else 1


def newest(versions: list[tuple[str, str]]) -> tuple[str, str]:
    """The (package, version) pair with the highest Debian version."""
    def by_version(x: tuple[str, str], y: tuple[str, str]) -> int:
        return _compare_versions(x[1], y[1])

    return max(versions, key=functools.cmp_to_key(by_version))


def kernel_package_pattern(series: str, flavour: str) -> re.Pattern[str]:
    # 6.1 -> linux-image-6.1.0-56-cloud-amd64-unsigned; 6.12 -> linux-image-6.12.113+deb12-cloud-amd64-unsigned
    # The ABI is the series, more numbers, then "-NN" / "+debNN" / "+bpo" parts; a flavour part
    # (cloud, rt, amd64) starts with a letter, so "amd64" cannot match the cloud-amd64 package.
    return re.compile(
        rf"^linux-image-{re.escape(series)}(\.\d+)*(-\d[0-9a-z.~]*|\+[0-9a-z.~]+)*-{re.escape(flavour)}-unsigned$"
    )


def parse_show(text: str) -> list[tuple[str, str]]:
    """(Package, Version) pairs from `apt-cache show` output."""
    pairs = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" ")
        )
        if "Package" in fields and "Version" in fields:
            pairs.append((fields["Package"], fields["Version"]))
    return pairs


def resolve_kernel_package(series: str, flavour: str) -> tuple[str, str]:
    """The newest installable kernel package of a series, as (package, version)."""
    pattern = kernel_package_pattern(series, flavour)
    names = [n for n in _run(["apt-cache", "pkgnames", "linux-image-"]).split() if pattern.match(n)]
    if not names:
        if not _run(["apt-cache", "pkgnames", "linux-image-"]).strip():
            raise InfraError("the host's apt lists are empty: run `apt-get update` (or `make setup`)")
        raise UserError(f"no Debian kernel package for debian:{series} ({flavour}) in the host's apt lists")
    return newest(parse_show(_run(["apt-cache", "show", "--no-all-versions", *names])))


def resolve_package(package: str, asked_as: str) -> tuple[str, str]:
    """The newest installable version of one named package, as (package, version)."""
    pairs = parse_show(_run(["apt-cache", "show", "--no-all-versions", package])) if package in set(
        _run(["apt-cache", "pkgnames", package]).split()) else []
    if not pairs:
        if not _run(["apt-cache", "pkgnames", "linux-"]).strip():
            raise InfraError("the host's apt lists are empty: run `apt-get update` (or `make setup`)")
        raise UserError(f"no Debian package {package} for {asked_as} in the host's apt lists")
    return newest(pairs)


def download(package: str, version: str, dest: Path) -> Path:
    """Download one .deb into dest (no install) and return its path."""
    dest.mkdir(parents=True, exist_ok=True)
    _run(["apt-get", "download", "-q", f"{package}={version}"], cwd=dest)
    debs = list(dest.glob(f"{package}_*.deb"))
    if len(debs) != 1:
        raise InfraError(f"apt-get download {package}={version} left {len(debs)} .deb files")
    return debs[0]
