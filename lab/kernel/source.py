"""Kernel source trees: Debian's linux-source-X.Y, a tarball, or a local tree, with an identity.

Debian sources and tarballs are unpacked once into the cache and never written again
(builds go to an object directory; patches to a linked copy). A local tree is used in
place; its identity is its git commit plus uncommitted changes, or a listing digest.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..core import apt, lock, progress
from ..core.errors import InfraError, UserError
from ..core.files import sha256_file
from ..core.log import Log
from .spec import DEBIAN_VERSION

_DEBIAN = re.compile(rf"^debian:{DEBIAN_VERSION}$")
_TARBALL = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tar.zst")


@dataclass(frozen=True)
class DebianSource:
    """linux-source-X.Y: the newest in the apt lists, or the exact version (6.1.176-1; an ABI name
    such as 6.1.0-53 stands for the source of that kernel image; 6.1.192 for its newest revision)."""

    series: str
    exact: str | None = None

    @property
    def text(self) -> str:
        return f"debian:{self.exact or self.series}"


@dataclass(frozen=True)
class TarballSource:
    path: Path


@dataclass(frozen=True)
class TreeSource:
    path: Path


SourceSpec = DebianSource | TarballSource | TreeSource


@dataclass(frozen=True)
class SourceTree:
    root: Path
    version: str  # `make kernelversion`, e.g. 6.1.192
    identity: dict[str, str]


def parse_source_spec(text: str) -> SourceSpec:
    if match := _DEBIAN.match(text):
        return DebianSource(match["series"], match["series"] + match["rest"] if match["rest"] else None)
    if text.startswith("debian:"):
        raise UserError(f"bad source {text!r}: expected debian:MAJOR.MINOR or an exact package version, "
                        "e.g. debian:6.1, debian:6.1.176-1 or debian:6.1.0-53")
    path = Path(text).expanduser()
    if path.is_dir():
        return TreeSource(path.resolve())
    if path.is_file() and path.name.endswith(_TARBALL):
        return TarballSource(path.resolve())
    if path.exists():
        raise UserError(f"source {text}: neither a kernel tree nor a .tar[.gz|.xz|.bz2|.zst] tarball")
    raise UserError(f"source {text}: no such file or directory (use debian:6.1, debian:6.12, a tree or a tarball)")


def _check_tree(root: Path, what: str) -> None:
    for needed in ("Makefile", "Kconfig", "arch/x86/Kconfig"):
        if not (root / needed).is_file():
            raise UserError(f"{what}: not an x86 kernel source tree (no {needed})")
    # Kbuild refuses an object directory beside an in-tree build; say so before it does.
    if (root / ".config").exists() or (root / "include" / "config").is_dir():
        raise UserError(f"{what}: the tree has an in-tree build (.config); run `make mrproper` in it first")


def kernel_version(root: Path) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL from the top Makefile (no make run needed)."""
    fields: dict[str, str] = {}
    for line in (root / "Makefile").read_text(errors="replace").splitlines()[:12]:
        if match := re.match(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(\S*)", line):
            fields[match[1]] = match[2]
    if not {"VERSION", "PATCHLEVEL"} <= fields.keys():
        raise UserError(f"{root}: the top Makefile has no VERSION/PATCHLEVEL")
    version = f"{fields['VERSION']}.{fields['PATCHLEVEL']}"
    if fields.get("SUBLEVEL"):
        version += f".{fields['SUBLEVEL']}"
    return version + fields.get("EXTRAVERSION", "")


def _extract_tarball(tarball: Path, entry: Path, identity: dict[str, str]) -> SourceTree:
    """Unpack into entry/tree atomically; the tarball's single top directory becomes the tree."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=entry.parent, prefix=".unpack-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "entry" / "unpacked").mkdir(parents=True)
        # As root GNU tar would keep the archive's owners and setuid bits: a tarball's file
        # owners and modes are not the lab's to install. (GNU tar already strips a leading "/"
        # and refuses ".." members and writing through a symlink.)
        with progress.showing(f"unpacking {tarball.name}", progress.bytes_of(tmp / "entry" / "unpacked", None)):
            done = subprocess.run(["tar", "-xf", str(tarball), "-C", str(tmp / "entry" / "unpacked"),
                                   "--no-same-owner", "--no-same-permissions"],
                                  capture_output=True, text=True, check=False)
        if done.returncode != 0:
            why = "; ".join(done.stderr.strip().splitlines()[-2:]) or f"tar exit {done.returncode}"
            raise UserError(f"source {tarball}: cannot unpack: {why}")
        tops = list((tmp / "entry" / "unpacked").iterdir())
        top = tops[0] if len(tops) == 1 and tops[0].is_dir() else tmp / "entry" / "unpacked"
        top.rename(tmp / "entry" / "tree")
        _check_tree(tmp / "entry" / "tree", f"source {tarball}")
        version = kernel_version(tmp / "entry" / "tree")
        (tmp / "entry" / "source.json").write_text(json.dumps({"version": version, "identity": identity}, indent=2) + "\n")
        shutil.rmtree(tmp / "entry" / "unpacked", ignore_errors=True)
        (tmp / "entry").rename(entry)
    return SourceTree(entry / "tree", version, identity)


def _cached(entry: Path, log: Log) -> SourceTree | None:
    """The unpacked tree of a cache entry, or None. A damaged entry (a truncated source.json, a
    lost tree) is moved out of the way with a warning, to be unpacked again."""
    meta = entry / "source.json"
    if not entry.exists():
        return None
    try:
        data = json.loads(meta.read_text())
        tree = SourceTree(entry / "tree", str(data["version"]), dict(data["identity"]))
        if not (tree.root / "Makefile").is_file():
            raise FileNotFoundError(f"{tree.root / 'Makefile'} is missing")
        return tree
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log(f"warning: cached source {entry} is damaged ({type(exc).__name__}: {exc}); unpacking it again")
    aside = entry.with_name(f".damaged-{entry.name}-{os.getpid()}")
    os.rename(entry, aside)
    shutil.rmtree(aside, ignore_errors=True)
    return None


@contextmanager
def _entry_locked(entry: Path, log: Log, what: str) -> Iterator[SourceTree | None]:
    """The entry's lock, and the entry if another lab finished it first (check, lock, check again)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with lock.locked(entry, log, what):
        yield _cached(entry, log)


def debian_entry(cache: Path, package: str, version: str) -> Path:
    """The cache entry of one linux-source package version."""
    return cache / "sources" / re.sub(r"[^A-Za-z0-9.+-]", "_", f"{package}_{version}")


def check(spec: SourceSpec) -> None:
    """What acquire would refuse, found without downloading or unpacking: a Debian version the apt
    lists do not hold, a tree that is not a kernel tree. (A tarball is only read when unpacked.)"""
    if isinstance(spec, DebianSource):
        apt.find_source_package(spec.series, spec.exact)
    elif isinstance(spec, TreeSource):
        _check_tree(spec.path, f"source {spec.path}")


def _debian(spec: DebianSource, cache: Path, log: Log) -> SourceTree:
    picked = apt.find_source_package(spec.series, spec.exact)
    package, version = picked.package, picked.version
    entry = debian_entry(cache, package, version)
    with _entry_locked(entry, log, f"source {package} {version}") as cached:
        if cached:
            log(f"source: {package} {version} (cached)")
            return cached
        return _download_and_extract(spec, package, version, entry, log)


def _download_and_extract(spec: DebianSource, package: str, version: str, entry: Path, log: Log) -> SourceTree:
    log(f"source: downloading {package} {version}")
    with tempfile.TemporaryDirectory(dir=entry.parent, prefix=".fetch-") as tmp_name:
        tmp = Path(tmp_name)
        deb = apt.download(package, version, tmp / "deb")
        unpacked = subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "pkg")], capture_output=True, text=True, check=False)
        if unpacked.returncode != 0:
            raise InfraError(f"unpacking {deb.name} failed: {unpacked.stderr.strip()}")
        tarballs = sorted((tmp / "pkg" / "usr" / "src").glob("linux-source-*.tar.*"))
        if len(tarballs) != 1:
            raise InfraError(f"{package}: expected one usr/src/linux-source-*.tar.*, found {len(tarballs)}")
        log(f"source: unpacking {tarballs[0].name}")
        identity = {"origin": "debian", "spec": f"debian:{spec.series}", "package": package, "version": version}
        return _extract_tarball(tarballs[0], entry, identity)


def _tarball(spec: TarballSource, cache: Path, log: Log) -> SourceTree:
    digest = sha256_file(spec.path)
    entry = cache / "sources" / f"tarball-{digest[:16]}"
    with _entry_locked(entry, log, f"source {spec.path.name}") as cached:
        if cached:
            log(f"source: {spec.path.name} (cached)")
            return cached
        log(f"source: unpacking {spec.path}")
        return _extract_tarball(spec.path, entry, {"origin": "tarball", "spec": str(spec.path), "sha256": digest})


def tree_digest(root: Path) -> str:
    """A local tree's state: git HEAD and uncommitted changes, else every file's path, size, mtime."""
    git = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    digest = hashlib.sha256()
    if git.returncode == 0:
        digest.update(git.stdout.encode())
        diff = subprocess.run(["git", "-C", str(root), "diff", "HEAD", "--binary"], capture_output=True, check=False)
        digest.update(diff.stdout)
        untracked = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--others", "--exclude-standard"],
                                   capture_output=True, text=True, check=False).stdout.split("\0")
        for name in sorted(n for n in untracked if n):
            path = root / name
            digest.update(name.encode() + (sha256_file(path).encode() if path.is_file() and not path.is_symlink() else b"-"))
        return "git-" + git.stdout.strip()[:12] + "-" + digest.hexdigest()[:12]
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            stat = os.lstat(os.path.join(directory, name))
            digest.update(f"{os.path.relpath(os.path.join(directory, name), root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return "files-" + digest.hexdigest()[:24]


def _tree(spec: TreeSource, log: Log) -> SourceTree:
    _check_tree(spec.path, f"source {spec.path}")
    log(f"source: local tree {spec.path}")
    return SourceTree(spec.path, kernel_version(spec.path),
                      {"origin": "tree", "spec": str(spec.path), "digest": tree_digest(spec.path)})


def acquire(spec: SourceSpec, cache: Path, log: Log) -> SourceTree:
    if isinstance(spec, DebianSource):
        return _debian(spec, cache, log)
    if isinstance(spec, TarballSource):
        return _tarball(spec, cache, log)
    return _tree(spec, log)
