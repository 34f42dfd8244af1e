"""lab.ksource: source specs, the top Makefile's version, tarball extraction into the cache, tree digests."""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Callable

import pytest

from lab.kernel import source as ksource
from lab.core.errors import UserError
from lab.kernel.source import DebianSource, TarballSource, TreeSource

MAKEFILE = (
    "# SPDX-License-Identifier: GPL-2.0\n"
    "VERSION = 6\n"
    "PATCHLEVEL = 1\n"
    "SUBLEVEL = 192\n"
    "EXTRAVERSION =\n"
    "NAME = Curry Ramen\n"
    "\n"
    "# *DOCUMENTATION*\n"
)
TREE_FILES = {
    "Makefile": MAKEFILE,
    "Kconfig": 'mainmenu "Linux"\nsource "arch/x86/Kconfig"\n',
    "arch/x86/Kconfig": "config X86\n\tdef_bool y\n",
    "kernel/bpf/syscall.c": "int bpf;\n",
}


def logs() -> tuple[list[str], Callable[[str], None]]:
    lines: list[str] = []
    return lines, lines.append


def make_tree(root: Path, files: dict[str, str] = TREE_FILES) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def make_tarball(path: Path, files: dict[str, str] = TREE_FILES, top: str | None = "linux-6.1.192") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}" if top else name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def no_outer_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git must not find a repository above tmp_path, nor read the user's configuration."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


# --- parse_source_spec ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, series", [("debian:6.1", "6.1"), ("debian:6.12", "6.12")])
def test_debian_source_spec(text: str, series: str) -> None:
    assert ksource.parse_source_spec(text) == DebianSource(series)


@pytest.mark.parametrize("text, series, exact", [
    ("debian:6.1.176-1", "6.1", "6.1.176-1"), ("debian:6.1.0-53", "6.1", "6.1.0-53"),
    ("debian:6.12.117-1~deb12u1", "6.12", "6.12.117-1~deb12u1")])
def test_exact_debian_source_spec(text: str, series: str, exact: str) -> None:
    spec = ksource.parse_source_spec(text)
    assert spec == DebianSource(series, exact)
    assert isinstance(spec, DebianSource) and spec.text == text


@pytest.mark.parametrize("text", ["debian:", "debian:6", "debian:6.1.", "debian:x.y", "debian:6.1:amd64"])
def test_bad_debian_source_spec_is_a_user_error_naming_it(text: str) -> None:
    with pytest.raises(UserError) as caught:
        ksource.parse_source_spec(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "debian:6.1" in message


def test_a_directory_is_a_tree_source(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "linux")
    assert ksource.parse_source_spec(str(tree)) == TreeSource(tree.resolve())


def test_a_relative_directory_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path / "linux")
    monkeypatch.chdir(tmp_path)
    spec = ksource.parse_source_spec("linux")
    assert spec == TreeSource((tmp_path / "linux").resolve())
    assert isinstance(spec, TreeSource) and spec.path.is_absolute()


@pytest.mark.parametrize("name", ["linux.tar", "linux.tar.gz", "linux.tgz", "linux.tar.xz", "linux.tar.bz2",
                                  "linux.tar.zst"])
def test_a_tarball_is_a_tarball_source(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    assert ksource.parse_source_spec(str(tmp_path / name)) == TarballSource((tmp_path / name).resolve())


def test_a_missing_path_is_a_user_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tar.gz"
    with pytest.raises(UserError) as caught:
        ksource.parse_source_spec(str(missing))
    message = str(caught.value)
    assert str(missing) in message
    assert "no such file" in message


@pytest.mark.parametrize("name", ["linux.zip", "bzImage", "linux.gz"])
def test_a_file_that_is_not_a_tarball_is_a_user_error(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(UserError) as caught:
        ksource.parse_source_spec(str(tmp_path / name))
    message = str(caught.value)
    assert name in message
    assert "tarball" in message


# --- kernel_version ------------------------------------------------------------------------------


def _version_of(tmp_path: Path, makefile: str) -> str:
    (tmp_path / "Makefile").write_text(makefile)
    return ksource.kernel_version(tmp_path)


def test_kernel_version_with_sublevel(tmp_path: Path) -> None:
    assert _version_of(tmp_path, MAKEFILE) == "6.1.192"


def test_kernel_version_with_extraversion(tmp_path: Path) -> None:
    makefile = "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\nEXTRAVERSION = -rc3\nNAME = Baby Opossum Posse\n"
    assert _version_of(tmp_path, makefile) == "6.12.0-rc3"


def test_kernel_version_with_empty_or_missing_sublevel(tmp_path: Path) -> None:
    assert _version_of(tmp_path, "VERSION = 5\nPATCHLEVEL = 4\nSUBLEVEL =\nEXTRAVERSION =\n") == "5.4"
    assert _version_of(tmp_path, "VERSION = 5\nPATCHLEVEL = 4\n") == "5.4"


def test_kernel_version_without_patchlevel_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        _version_of(tmp_path, "# nothing useful\nVERSION = 6\n")
    assert str(tmp_path) in str(caught.value)


# --- local trees ---------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["Makefile", "Kconfig", "arch/x86/Kconfig"])
def test_a_tree_without_a_needed_file_is_a_user_error(tmp_path: Path, no_outer_git: None, missing: str) -> None:
    tree = make_tree(tmp_path / "tree")
    (tree / missing).unlink()
    with pytest.raises(UserError) as caught:
        ksource.acquire(ksource.parse_source_spec(str(tree)), tmp_path / "cache", logs()[1])
    message = str(caught.value)
    assert missing in message
    assert str(tree) in message


def test_a_tree_with_an_in_tree_config_is_a_user_error(tmp_path: Path, no_outer_git: None) -> None:
    tree = make_tree(tmp_path / "tree")
    (tree / ".config").write_text("CONFIG_X=y\n")
    with pytest.raises(UserError) as caught:
        ksource.acquire(ksource.parse_source_spec(str(tree)), tmp_path / "cache", logs()[1])
    assert "mrproper" in str(caught.value)


def test_a_tree_with_include_config_is_a_user_error(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    (tree / "include" / "config").mkdir(parents=True)
    with pytest.raises(UserError, match="mrproper"):
        ksource._check_tree(tree, "source tree")


def test_a_local_tree_is_used_in_place_with_a_digest(tmp_path: Path, no_outer_git: None) -> None:
    tree = make_tree(tmp_path / "tree")
    cache = tmp_path / "cache"
    lines, log = logs()
    source = ksource.acquire(ksource.parse_source_spec(str(tree)), cache, log)
    assert source.root == tree.resolve()
    assert source.version == "6.1.192"
    assert source.identity["origin"] == "tree"
    assert source.identity["digest"] == ksource.tree_digest(tree.resolve())
    assert not (cache / "sources").exists()
    assert any(str(tree) in line for line in lines)


# --- tarballs ------------------------------------------------------------------------------------


def test_tarball_is_extracted_into_the_cache_with_its_sha256(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "linux-6.1.192.tar.gz")
    cache = tmp_path / "cache"
    source = ksource.acquire(ksource.parse_source_spec(str(tarball)), cache, logs()[1])
    assert source.root.is_relative_to(cache)
    assert source.version == "6.1.192"
    for name, text in TREE_FILES.items():
        assert (source.root / name).read_text() == text
    assert source.identity["origin"] == "tarball"
    assert source.identity["sha256"] == hashlib.sha256(tarball.read_bytes()).hexdigest()
    # Only the entry itself is left in the cache: no half-unpacked temporary directory.
    assert [p.name for p in (cache / "sources").iterdir()] == [source.root.parent.name]


def test_tarball_without_a_top_directory_is_the_tree_itself(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "flat.tar.gz", top=None)
    source = ksource.acquire(ksource.parse_source_spec(str(tarball)), tmp_path / "cache", logs()[1])
    assert (source.root / "Makefile").read_text() == MAKEFILE
    assert (source.root / "arch" / "x86" / "Kconfig").is_file()


def test_second_acquire_of_a_tarball_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tarball = make_tarball(tmp_path / "linux.tar.gz")
    cache = tmp_path / "cache"
    first = ksource.acquire(ksource.parse_source_spec(str(tarball)), cache, logs()[1])
    inode = (first.root / "Makefile").stat().st_ino

    def no_extraction(*args: object) -> None:
        raise AssertionError("extracted again")

    monkeypatch.setattr(ksource, "_extract_tarball", no_extraction)
    lines, log = logs()
    second = ksource.acquire(ksource.parse_source_spec(str(tarball)), cache, log)
    assert second == first
    assert (second.root / "Makefile").stat().st_ino == inode
    assert any("cached" in line for line in lines)


def test_a_different_tarball_gets_a_different_entry(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    one = ksource.acquire(ksource.parse_source_spec(str(make_tarball(tmp_path / "a.tar.gz"))), cache, logs()[1])
    changed = {**TREE_FILES, "Makefile": MAKEFILE.replace("SUBLEVEL = 192", "SUBLEVEL = 193")}
    two = ksource.acquire(ksource.parse_source_spec(str(make_tarball(tmp_path / "b.tar.gz", changed))), cache, logs()[1])
    assert one.root != two.root
    assert (one.version, two.version) == ("6.1.192", "6.1.193")
    assert one.identity["sha256"] != two.identity["sha256"]


def test_a_tarball_that_is_not_a_kernel_tree_leaves_nothing_in_the_cache(tmp_path: Path) -> None:
    files = {name: text for name, text in TREE_FILES.items() if name != "arch/x86/Kconfig"}
    tarball = make_tarball(tmp_path / "arm.tar.gz", files)
    cache = tmp_path / "cache"
    with pytest.raises(UserError) as caught:
        ksource.acquire(ksource.parse_source_spec(str(tarball)), cache, logs()[1])
    assert "arch/x86/Kconfig" in str(caught.value)
    assert list((cache / "sources").iterdir()) == []


def test_a_corrupt_tarball_is_a_user_error_with_tars_message(tmp_path: Path) -> None:
    tarball = tmp_path / "broken.tar.gz"
    tarball.write_bytes(b"this is not gzip data\n" * 10)
    cache = tmp_path / "cache"
    with pytest.raises(UserError) as caught:
        ksource.acquire(ksource.parse_source_spec(str(tarball)), cache, logs()[1])
    message = str(caught.value)
    assert str(tarball) in message
    assert "tar: " in message
    assert "['" not in message and "']" not in message  # tar's line, not a Python list's repr
    assert list((cache / "sources").iterdir()) == []


# --- tree_digest ---------------------------------------------------------------------------------


def test_tree_digest_of_a_plain_tree_changes_when_a_file_changes(tmp_path: Path, no_outer_git: None) -> None:
    tree = make_tree(tmp_path / "tree")
    before = ksource.tree_digest(tree)
    assert ksource.tree_digest(tree) == before
    target = tree / "kernel" / "bpf" / "syscall.c"
    stat = target.stat()
    target.write_text("int bpf = 1;\n")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = ksource.tree_digest(tree)
    assert after != before
    (tree / "new.c").write_text("")
    assert ksource.tree_digest(tree) not in (before, after)


def _git(tree: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(tree), "-c", "user.name=Lab Test", "-c", "user.email=lab@example.invalid",
                    "-c", "commit.gpgsign=false", *args], check=True, capture_output=True)


def test_tree_digest_of_a_git_tree_follows_head_and_uncommitted_changes(tmp_path: Path, no_outer_git: None) -> None:
    tree = make_tree(tmp_path / "tree")
    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-q", "-m", "base")
    clean = ksource.tree_digest(tree)
    assert clean.startswith("git-")
    assert ksource.tree_digest(tree) == clean

    (tree / "kernel" / "bpf" / "syscall.c").write_text("int bpf = 2;\n")
    modified = ksource.tree_digest(tree)
    assert modified != clean

    _git(tree, "commit", "-q", "-a", "-m", "change")
    committed = ksource.tree_digest(tree)
    assert committed not in (clean, modified)

    (tree / "kernel" / "bpf" / "untracked.c").write_text("int u;\n")
    untracked = ksource.tree_digest(tree)
    assert untracked != committed
    (tree / "kernel" / "bpf" / "untracked.c").write_text("int u = 1;\n")
    assert ksource.tree_digest(tree) != untracked


def test_tree_digest_of_a_git_tree_ignores_ignored_files(tmp_path: Path, no_outer_git: None) -> None:
    tree = make_tree(tmp_path / "tree", {**TREE_FILES, ".gitignore": "*.o\n"})
    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-q", "-m", "base")
    before = ksource.tree_digest(tree)
    (tree / "kernel" / "bpf" / "syscall.o").write_bytes(b"\x7fELF")
    assert ksource.tree_digest(tree) == before


@pytest.mark.parametrize("name", ["my notes.txt", "caf\u00e9.c"])
def test_tree_digest_of_a_git_tree_with_an_unusually_named_untracked_file(tmp_path: Path, no_outer_git: None,
                                                                         name: str) -> None:
    tree = make_tree(tmp_path / "tree")
    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-q", "-m", "base")
    clean = ksource.tree_digest(tree)
    (tree / name).write_text("notes\n")
    with_file = ksource.tree_digest(tree)
    assert with_file != clean
    (tree / name).write_text("other notes\n")
    assert ksource.tree_digest(tree) != with_file
