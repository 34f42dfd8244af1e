"""The host's apt: its configured Debian sources, package resolution and download.

The mirror is always read from the host's apt configuration (or $LAB_APT_SOURCES, a
sources file), never written into the repository.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import progress
from .errors import InfraError, UserError
from .files import write_json_atomic

APT_DIR = Path("/etc/apt")
APT_LISTS = Path("/var/lib/apt/lists")


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


def lists_signature(lists: Path = APT_LISTS, apt_dir: Path = APT_DIR) -> str:
    """What apt-cache's answers depend on: the lists, and the sources and pinning that chose them."""
    digest = hashlib.sha256()
    paths = [*sorted(lists.glob("*")), apt_dir / "sources.list", apt_dir / "preferences",
             *sorted((apt_dir / "sources.list.d").glob("*")), *sorted((apt_dir / "preferences.d").glob("*"))]
    for path in paths:
        try:
            status = path.stat()
        except OSError:
            continue
        if path.is_file():
            digest.update(f"{path}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def newest_kernel_package(series: str, flavour: str, memo: Path, lists: Path = APT_LISTS,
                          apt_dir: Path = APT_DIR) -> tuple[str, str]:
    """resolve_kernel_package, remembered in `memo` until the apt lists (or sources, or pinning)
    change: apt-cache takes over 2 s here, and `debian:X.Y` is resolved by every run."""
    signature = lists_signature(lists, apt_dir)
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    entry = known.get(f"{series}:{flavour}")
    if isinstance(entry, dict) and entry.get("lists") == signature:
        return str(entry["package"]), str(entry["version"])
    package, version = resolve_kernel_package(series, flavour)
    known[f"{series}:{flavour}"] = {"lists": signature, "package": package, "version": version}
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(memo, known)
    except (OSError, InfraError):
        pass  # only a memo: the next run asks apt-cache again
    return package, version


# --- every version the lists hold, and one exact version of them --------------------------------


@dataclass(frozen=True)
class DebianPackage:
    """One installable (package, version) of a kernel series; abi is the kernel ABI name the image
    package is named by (6.1.0-53, 6.12.117+deb12), "" for a linux-source package."""

    package: str
    version: str
    abi: str = ""

    @property
    def upstream(self) -> str:
        """6.1.187 of 6.1.187-1, 6.12.117 of 6.12.117-1~deb12u1."""
        return self.version.split(":", 1)[-1].split("-", 1)[0]

    def names(self) -> tuple[str, ...]:
        """The exact forms that name this package after `debian:`."""
        return (self.version, self.abi) if self.abi else (self.version,)


def newest_first(packages: list[DebianPackage]) -> list[DebianPackage]:
    def by_version(x: DebianPackage, y: DebianPackage) -> int:
        return _compare_versions(x.version, y.version)

    return sorted(packages, key=functools.cmp_to_key(by_version), reverse=True)


def _every_version(names: list[str]) -> list[tuple[str, str]]:
    """(package, version) of every version of these packages the lists hold, once each."""
    if not names:
        return []
    return list(dict.fromkeys(parse_show(_run(["apt-cache", "show", *names]))))


def kernel_abi(package: str, flavour: str) -> str:
    return package.removeprefix("linux-image-").removesuffix(f"-{flavour}-unsigned")


def kernel_packages(series: str, flavour: str) -> list[DebianPackage]:
    """Every kernel image package version of a series in the host's apt lists, newest first."""
    pattern = kernel_package_pattern(series, flavour)
    names = [n for n in _run(["apt-cache", "pkgnames", "linux-image-"]).split() if pattern.match(n)]
    return newest_first([DebianPackage(p, v, kernel_abi(p, flavour)) for p, v in _every_version(names)])


def source_packages(series: str) -> list[DebianPackage]:
    """Every linux-source-X.Y version in the host's apt lists, newest first."""
    package = f"linux-source-{series}"
    present = package in set(_run(["apt-cache", "pkgnames", package]).split())
    return newest_first([DebianPackage(p, v) for p, v in _every_version([package] if present else [])
                         if p == package])


def series_in_lists(flavour: str) -> list[str]:
    """The kernel series (6.1, 6.12) the lists hold an image or a source package of, newest first."""
    names = _run(["apt-cache", "pkgnames", "linux-"]).split()
    found = {m[1] for n in names if (m := re.match(r"^linux-source-(\d+\.\d+)$", n))}
    found |= {m[1] for n in names if (m := re.match(rf"^linux-image-(\d+\.\d+)[.+-].*-{re.escape(flavour)}-unsigned$", n))
              and kernel_package_pattern(m[1], flavour).match(n)}
    return sorted(found, key=lambda s: tuple(int(part) for part in s.split(".")), reverse=True)


def _nearest(candidates: list[DebianPackage], exact: str) -> list[DebianPackage]:
    """The listed packages just older and just newer than the asked version. An ABI-shaped ask
    (6.1.0-58) is placed among the ABI names, anything else among the package versions."""
    head = re.split(r"[-+~]", exact, maxsplit=1)[0]
    by_abi = any(c.abi and re.split(r"[-+~]", c.abi, maxsplit=1)[0] == head for c in candidates)
    newer = [c for c in candidates if _compare_versions(c.abi if by_abi else c.version, exact) > 0]
    older = [c for c in candidates if _compare_versions(c.abi if by_abi else c.version, exact) < 0]
    return ([older[0]] if older else []) + ([newer[-1]] if newer else [])  # candidates are newest first


def describe_package(package: DebianPackage) -> str:
    """debian:6.1.176-1 (6.1.0-50): how `lab kernel list` and the errors name a package."""
    named = f"debian:{package.version}"
    return f"{named} ({package.abi})" if package.abi else named


def pick_exact(candidates: list[DebianPackage], exact: str, asked: str, what: str) -> DebianPackage:
    """The package an exact version names: its Debian version (6.1.176-1), its ABI name (6.1.0-53),
    or an upstream version (6.1.192: the newest Debian revision of it). UserError naming the
    nearest listed ones otherwise. candidates are newest first."""
    for candidate in candidates:
        if exact in candidate.names():
            return candidate
    for candidate in candidates:
        if candidate.upstream == exact:
            return candidate
    nearest = _nearest(candidates, exact)
    hint = f"; nearest: {', '.join(describe_package(c) for c in nearest)}" if nearest else ""
    raise UserError(f"no {what} {asked} in the host's apt lists{hint} (`lab kernel list` lists them all)")


def check_lists() -> None:
    """InfraError when the host's apt lists are empty (never updated)."""
    if not _run(["apt-cache", "pkgnames", "linux-"]).strip():
        raise InfraError("the host's apt lists are empty: run `apt-get update` (or `make setup`)")


def find_kernel_package(series: str, flavour: str, exact: str) -> DebianPackage:
    """The kernel image package an exact `debian:<version>` names."""
    candidates = kernel_packages(series, flavour)
    if not candidates:
        check_lists()
        raise UserError(f"no Debian kernel package for debian:{series} ({flavour}) in the host's apt lists")
    return pick_exact(candidates, exact, f"debian:{exact}", f"Debian {series} kernel ({flavour})")


def find_source_package(series: str, exact: str | None) -> DebianPackage:
    """The linux-source-X.Y version `debian:X.Y` (the newest) or `debian:<version>` names. An ABI
    name (6.1.0-53) stands for the source of that kernel image: the same Debian version."""
    candidates = source_packages(series)
    if not candidates:
        check_lists()
        raise UserError(f"no Debian package linux-source-{series} for debian:{series} in the host's apt lists")
    if exact is None:
        return candidates[0]
    asked = f"debian:{exact}"
    for image in kernel_packages(series, "cloud-amd64"):
        if image.abi == exact:
            exact = image.version
            break
    return pick_exact(candidates, exact, asked, f"Debian source linux-source-{series}")


def package_size(package: str, version: str) -> int | None:
    """The .deb's size by the apt lists (None when they do not say)."""
    try:
        shown = _run(["apt-cache", "show", f"{package}={version}"])
    except InfraError:
        return None
    found = re.search(r"^Size: (\d+)$", shown, re.MULTILINE)
    return int(found[1]) if found else None


def download(package: str, version: str, dest: Path) -> Path:
    """Download one .deb into dest (no install) and return its path; its bytes of the total
    are shown on a terminal meanwhile."""
    dest.mkdir(parents=True, exist_ok=True)
    total = package_size(package, version) if progress.shown_on(sys.stderr) else None
    with progress.showing(f"downloading {package} {version}", progress.bytes_of(dest, total)):
        _run(["apt-get", "download", "-q", f"{package}={version}"], cwd=dest)
    debs = list(dest.glob(f"{package}_*.deb"))
    if len(debs) != 1:
        raise InfraError(f"apt-get download {package}={version} left {len(debs)} .deb files")
    return debs[0]
