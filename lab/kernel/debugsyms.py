"""A Debian kernel's symbols for gdb: the vmlinux of its `-dbg` package (linux-image-X-dbg, about
280 MB to download, 1.7 GB unpacked), fetched on request (`lab boot --gdb --symbols`) and cached
like the kernel. Only the one file gdb needs is kept: the package is streamed through
`dpkg-deb --fsys-tarfile | tar -x` with that member named, nothing else is written.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..core import apt, lock, progress
from ..core.errors import InfraError
from ..core.log import Log
from .acquire import Kernel

VMLINUX = "vmlinux"


def dbg_package(kernel: Kernel) -> tuple[str, str]:
    """linux-image-6.1.0-57-cloud-amd64-unsigned 6.1.192-3 -> its -dbg package, the same version."""
    package, version = str(kernel.identity.get("package", "")), str(kernel.identity.get("version", ""))
    if kernel.identity.get("origin") != "debian" or not package or not version:
        raise ValueError("only a Debian kernel package has a -dbg package")
    return package.removesuffix("-unsigned") + "-dbg", version


def entry(cache: Path, package: str, version: str) -> Path:
    return cache / "debug-symbols" / re.sub(r"[^A-Za-z0-9.+-]", "_", f"{package}_{version}")


def cached(cache: Path, kernel: Kernel) -> Path | None:
    package, version = dbg_package(kernel)
    found = entry(cache, package, version) / VMLINUX
    return found if found.is_file() else None


def vmlinux(kernel: Kernel, cache: Path, log: Log) -> Path:
    """The kernel's vmlinux with its debug info, from the cache or fetched into it now."""
    package, version = dbg_package(kernel)
    where = entry(cache, package, version)
    where.parent.mkdir(parents=True, exist_ok=True)
    with lock.locked(where, log, f"symbols {package} {version}"):
        if (where / VMLINUX).is_file():
            log(f"symbols: {package} {version} (cached)")
            return where / VMLINUX
        log(f"symbols: downloading {package} {version} (about 280 MB; only its vmlinux is kept)")
        staging = lock.staging_path(where, ".fetch-")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            with tempfile.TemporaryDirectory(dir=where.parent, prefix=".deb-") as tmp:
                deb = apt.download(package, version, Path(tmp))
                _extract(deb, f"./usr/lib/debug/boot/vmlinux-{kernel.release}", staging / VMLINUX)
            (staging / "symbols.json").write_text(json.dumps({"package": package, "version": version,
                                                              "release": kernel.release}, indent=2) + "\n")
            lock.install(staging, where)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return where / VMLINUX


def _extract(deb: Path, member: str, dest: Path) -> None:
    unpacked = dest.parent / ".unpacked"
    unpacked.mkdir()
    with progress.showing(f"symbols: unpacking {Path(member).name}", progress.bytes_of(unpacked, None)):
        # One pipeline: the package's data streamed into tar, which writes the one member named.
        dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        tar = subprocess.run(["tar", "-x", "-C", str(unpacked), member], stdin=dpkg.stdout,
                             capture_output=True, text=True, check=False)
        assert dpkg.stdout is not None
        dpkg.stdout.close()
        dpkg_error = dpkg.stderr.read().decode(errors="replace") if dpkg.stderr else ""
        dpkg.wait()
    found = unpacked / member
    if dpkg.returncode != 0 or tar.returncode != 0 or not found.is_file():
        why = (dpkg_error or tar.stderr).strip().splitlines()[-1:] or [f"no {member} in {deb.name}"]
        raise InfraError(f"unpacking {member} from {deb.name} failed: {why[0]}")
    found.rename(dest)
    shutil.rmtree(unpacked, ignore_errors=True)
