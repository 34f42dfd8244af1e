"""`lab boot --gdb --symbols`: which -dbg package a Debian kernel's symbols come from, where they
are cached, and the extraction of the one member gdb needs (on a package built here with
dpkg-deb; the real download is tried by hand, see the README)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from e2ehelpers import lab

from lab.kernel import debugsyms
from lab.kernel.acquire import Kernel

RELEASE = "6.1.0-57-cloud-amd64"


def debian_kernel(tmp_path: Path) -> Kernel:
    return Kernel(tmp_path / "vmlinuz", RELEASE, tmp_path / "config", None,
                  {"origin": "debian", "spec": "debian:6.1", "package": f"linux-image-{RELEASE}-unsigned",
                   "version": "6.1.192-3"})


def test_the_dbg_package_is_the_image_package_s_own(tmp_path: Path) -> None:
    assert debugsyms.dbg_package(debian_kernel(tmp_path)) == (f"linux-image-{RELEASE}-dbg", "6.1.192-3")
    built = Kernel(tmp_path / "bzImage", "6.1.192", tmp_path / "config", None, {"origin": "build", "build_id": "x"})
    with pytest.raises(ValueError):
        debugsyms.dbg_package(built)


def test_only_the_vmlinux_is_taken_out_of_the_package(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(f"Package: linux-image-{RELEASE}-dbg\nVersion: 6.1.192-3\n"
                                             "Architecture: amd64\nMaintainer: lab\nDescription: test\n")
    boot = root / "usr" / "lib" / "debug" / "boot"
    boot.mkdir(parents=True)
    (boot / f"vmlinux-{RELEASE}").write_bytes(b"\x7fELF symbols")
    (root / "usr" / "lib" / "debug" / "lib" / "modules").mkdir(parents=True)
    (root / "usr" / "lib" / "debug" / "lib" / "modules" / "big.ko").write_bytes(b"x" * 4096)
    deb = tmp_path / "dbg.deb"
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(root), str(deb)], check=True, capture_output=True)
    (tmp_path / "out").mkdir()
    debugsyms._extract(deb, f"./usr/lib/debug/boot/vmlinux-{RELEASE}", tmp_path / "out" / "vmlinux")
    assert (tmp_path / "out" / "vmlinux").read_bytes() == b"\x7fELF symbols"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["vmlinux"]  # nothing else written
    with pytest.raises(debugsyms.InfraError, match="no-such-member|Not found"):
        debugsyms._extract(deb, "./usr/lib/debug/boot/no-such-member", tmp_path / "out" / "other")


def test_a_fetched_vmlinux_is_found_in_the_cache(tmp_path: Path) -> None:
    kernel = debian_kernel(tmp_path)
    assert debugsyms.cached(tmp_path, kernel) is None
    where = debugsyms.entry(tmp_path, *debugsyms.dbg_package(kernel))
    where.mkdir(parents=True)
    (where / "vmlinux").write_bytes(b"x")
    assert debugsyms.cached(tmp_path, kernel) == where / "vmlinux"


@pytest.mark.parametrize("argv", [["boot", "--symbols"], ["boot", "--gdb", "--symbols", "--kernel", "build:nope"]],
                         ids=["without --gdb", "not a Debian kernel"])
def test_symbols_without_gdb_or_a_debian_kernel_is_one_line_exit_2(argv: list[str]) -> None:
    done = lab(*argv, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "lab: error: --symbols goes with --gdb on a Debian kernel (a lab build keeps its own vmlinux)"]
