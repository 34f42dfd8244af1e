"""lab.kernel: configs, bzImage headers, local kernels, the cache entry of a Debian package."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from lab.core import apt
from lab.kernel import acquire as kernel
from lab.core.errors import InfraError, UserError
from lab.core.paths import cache_dir
from lab.kernel.acquire import Kernel
from labfakes import make_bzimage
from lab.kernel.spec import DebianSpec, PathSpec

GOOD_CONFIG = "#\n# Linux/x86 6.1.0 Kernel Configuration\n#\nCONFIG_BPF=y\nCONFIG_BPF_SYSCALL=y\nCONFIG_BPF_JIT=y\n"


def logs() -> tuple[list[str], Callable[[str], None]]:
    lines: list[str] = []
    return lines, lines.append


# --- parse_config / check_config ---------------------------------------------------------------


def test_parse_config() -> None:
    values = kernel.parse_config(
        "# comment\nCONFIG_BPF_SYSCALL=y\nCONFIG_DEBUG_INFO_BTF=m\n# CONFIG_KASAN is not set\n"
        'CONFIG_LOCALVERSION="-lab"\nCONFIG_NR_CPUS=64\n\nCONFIG_CMDLINE="a=b c=d"\n'
    )
    assert values == {
        "CONFIG_BPF_SYSCALL": "y",
        "CONFIG_DEBUG_INFO_BTF": "m",
        "CONFIG_KASAN": "n",
        "CONFIG_LOCALVERSION": '"-lab"',
        "CONFIG_NR_CPUS": "64",
        "CONFIG_CMDLINE": '"a=b c=d"',
    }


def test_check_config_accepts_bpf_syscall(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(GOOD_CONFIG)
    kernel.check_config(config, "kernel x")  # no exception


@pytest.mark.parametrize("text", [
    "CONFIG_BPF=y\n# CONFIG_BPF_SYSCALL is not set\n",
    "CONFIG_BPF=y\n",
    "CONFIG_BPF_SYSCALL=m\n",
    "",
])
def test_check_config_refuses_a_kernel_without_bpf_syscall(tmp_path: Path, text: str) -> None:
    config = tmp_path / "config"
    config.write_text(text)
    with pytest.raises(UserError) as caught:
        kernel.check_config(config, "kernel /k/bzImage")
    message = str(caught.value)
    assert "\n" not in message
    assert "CONFIG_BPF_SYSCALL=y" in message
    assert "kernel /k/bzImage" in message


# --- bzimage_release -----------------------------------------------------------------------------


def test_bzimage_release_reads_the_setup_header(tmp_path: Path) -> None:
    image = make_bzimage(tmp_path / "bzImage", "6.9.0-rc3-lab+ (me@host) #7 SMP PREEMPT_DYNAMIC Tue Apr 2 2024")
    assert kernel.bzimage_release(image) == "6.9.0-rc3-lab+"


def test_bzimage_release_follows_the_pointer(tmp_path: Path) -> None:
    image = make_bzimage(tmp_path / "bzImage", "6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) #1",
                         pointer_at=0x1234)
    assert kernel.bzimage_release(image) == "6.1.0-56-cloud-amd64"


def test_bzimage_release_of_a_non_kernel_file(tmp_path: Path) -> None:
    not_kernel = tmp_path / "notes.txt"
    not_kernel.write_bytes(b"hello " * 2000)
    with pytest.raises(UserError, match="not an x86 bzImage"):
        kernel.bzimage_release(not_kernel)


def test_bzimage_release_of_a_short_file(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"\0" * 0x204 + b"HdrS")  # HdrS at the wrong place, and too short
    with pytest.raises(UserError, match="not an x86 bzImage"):
        kernel.bzimage_release(short)


def test_bzimage_release_of_a_header_without_version(tmp_path: Path) -> None:
    image = make_bzimage(tmp_path / "bzImage", "")
    with pytest.raises(UserError, match="no version string"):
        kernel.bzimage_release(image)


def test_bzimage_release_of_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "bzImage"
    with pytest.raises(UserError) as caught:
        kernel.bzimage_release(missing)
    assert str(missing) in str(caught.value)
    assert "No such file" in str(caught.value)


@pytest.fixture(scope="module")
def debian_kernel() -> Kernel:
    """Debian's 6.1 cloud kernel in the lab's own cache (the e2e boots fetched it already; alone,
    this downloads it once, ~30 MB, with the host's apt)."""
    return kernel.fetch(DebianSpec("6.1"), cache_dir(), lambda message: None)


def test_bzimage_release_of_a_real_debian_kernel(debian_kernel: Kernel) -> None:
    assert kernel.bzimage_release(debian_kernel.image) == debian_kernel.release
    config = debian_kernel.image.parent / f"config-{debian_kernel.release}"
    kernel.check_config(config, str(debian_kernel.image))  # Debian kernels have bpf(2)


# --- use_local -----------------------------------------------------------------------------------


def test_use_local_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "build" / "bzImage"
    lines, log = logs()
    with pytest.raises(UserError) as caught:
        kernel.use_local(PathSpec(missing), log)
    assert str(missing) in str(caught.value)
    assert "no such file" in str(caught.value)


def test_use_local_directory(tmp_path: Path) -> None:
    lines, log = logs()
    with pytest.raises(UserError, match="not a regular file"):
        kernel.use_local(PathSpec(tmp_path), log)


def test_use_local_non_kernel(tmp_path: Path) -> None:
    text = tmp_path / "vmlinux"
    text.write_text("ELF? no\n" * 1000)
    lines, log = logs()
    with pytest.raises(UserError, match="not an x86 bzImage"):
        kernel.use_local(PathSpec(text), log)


def test_use_local_without_config_warns(tmp_path: Path) -> None:
    image = make_bzimage(tmp_path / "bzImage", "6.9.0 #1")
    lines, log = logs()
    found = kernel.use_local(PathSpec(image), log)
    assert found.release == "6.9.0"
    assert found.image == image.resolve()
    assert found.config is None and found.modules is None
    assert found.identity["origin"] == "path"
    assert found.identity["image_sha256"] == kernel.sha256_file(image)
    assert "config_sha256" not in found.identity
    assert any("warning" in line and "CONFIG_BPF_SYSCALL is not checked" in line for line in lines)


@pytest.mark.parametrize("config_name", ["config", ".config", "config-6.9.0-lab"])
def test_use_local_finds_a_config_beside_the_image(tmp_path: Path, config_name: str) -> None:
    image = make_bzimage(tmp_path / "vmlinuz-6.9.0-lab", "6.9.0-lab #1")
    (tmp_path / config_name).write_text(GOOD_CONFIG)
    lines, log = logs()
    found = kernel.use_local(PathSpec(image), log)
    assert found.config == tmp_path / config_name
    assert found.identity["config_sha256"] == kernel.sha256_file(tmp_path / config_name)
    assert not any("warning" in line for line in lines)


def test_use_local_checks_the_discovered_config(tmp_path: Path) -> None:
    image = make_bzimage(tmp_path / "bzImage", "6.9.0 #1")
    (tmp_path / ".config").write_text("# CONFIG_BPF_SYSCALL is not set\n")
    lines, log = logs()
    with pytest.raises(UserError, match="CONFIG_BPF_SYSCALL"):
        kernel.use_local(PathSpec(image), log)


def test_use_local_explicit_config_wins_and_must_exist(tmp_path: Path) -> None:
    image = make_bzimage(tmp_path / "bzImage", "6.9.0 #1")
    (tmp_path / ".config").write_text("# CONFIG_BPF_SYSCALL is not set\n")  # would be refused
    explicit = tmp_path / "other.config"
    explicit.write_text(GOOD_CONFIG)
    lines, log = logs()
    assert kernel.use_local(PathSpec(image, config=explicit), log).config == explicit
    missing = tmp_path / "missing.config"
    with pytest.raises(UserError) as caught:
        kernel.use_local(PathSpec(image, config=missing), log)
    assert str(missing) in str(caught.value)


def test_use_local_modules_dir_needs_modules_dep(tmp_path: Path) -> None:
    image = make_bzimage(tmp_path / "bzImage", "6.9.0 #1")
    modules = tmp_path / "lib" / "modules" / "6.9.0"
    modules.mkdir(parents=True)
    lines, log = logs()
    with pytest.raises(UserError) as caught:
        kernel.use_local(PathSpec(image, modules=modules), log)
    assert str(modules) in str(caught.value)
    assert "modules.dep" in str(caught.value) and "6.9.0" in str(caught.value)
    (modules / "modules.dep").write_text("")
    assert kernel.use_local(PathSpec(image, modules=modules), log).modules == modules


# --- Kernel JSON --------------------------------------------------------------------------------


def test_kernel_json_round_trip(tmp_path: Path) -> None:
    original = Kernel(tmp_path / "vmlinuz-6.1.0", "6.1.0", tmp_path / "config-6.1.0", tmp_path / "modules",
                      {"origin": "debian", "package": "linux-image-x", "version": "6.1.1-1"})
    data = original.to_json()
    assert data["image"] == str(tmp_path / "vmlinuz-6.1.0")
    again = Kernel.from_json(json.loads(json.dumps(data)))
    assert again == original
    assert isinstance(again.image, Path) and isinstance(again.config, Path)


def test_kernel_json_round_trip_without_config_and_modules(tmp_path: Path) -> None:
    original = Kernel(tmp_path / "bzImage", "6.9.0", None, None, {"origin": "path"})
    data = json.loads(json.dumps(original.to_json()))
    assert data["config"] is None and data["modules"] is None
    assert Kernel.from_json(data) == original


# --- fetch_debian, with apt replaced by a locally built package ---------------------------------


RELEASE = "6.1.0-99-cloud-amd64"
PACKAGE = f"linux-image-{RELEASE}-unsigned"
VERSION = "6.1.999-1~lab1"


def _build_deb(tmp_path: Path, config: str) -> Path:
    root = tmp_path / "debroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {PACKAGE}\nVersion: {VERSION}\nArchitecture: amd64\nMaintainer: lab <lab@example.org>\n"
        "Description: fake kernel for the lab's unit tests\n"
    )
    (root / "boot").mkdir()
    make_bzimage(root / "boot" / f"vmlinuz-{RELEASE}", f"{RELEASE} (debian-kernel@lists.debian.org) #1 SMP")
    (root / "boot" / f"config-{RELEASE}").write_text(config)
    (root / "lib" / "modules" / RELEASE / "kernel").mkdir(parents=True)
    deb = tmp_path / f"{PACKAGE}_{VERSION}_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)], check=True,
                   capture_output=True)
    return deb


@pytest.fixture
def fake_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    downloads: list[str] = []
    monkeypatch.setattr(apt, "resolve_kernel_package", lambda series, flavour: (PACKAGE, VERSION))

    def download(package: str, version: str, dest: Path) -> Path:
        downloads.append(f"{package}={version}")
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(tmp_path / "the.deb", dest))

    monkeypatch.setattr(apt, "download", download)
    return downloads


@pytest.mark.skipif(shutil.which("dpkg-deb") is None or shutil.which("depmod") is None, reason="needs dpkg-deb, depmod")
def test_fetch_debian_unpacks_once_and_then_uses_the_cache(tmp_path: Path, fake_apt: list[str]) -> None:
    shutil.move(_build_deb(tmp_path, GOOD_CONFIG), tmp_path / "the.deb")
    cache = tmp_path / "cache"
    lines, log = logs()
    first = kernel.fetch(DebianSpec("6.1"), cache, log)
    entry = cache / "kernels" / f"{PACKAGE}_6.1.999-1_lab1"
    assert first.image == entry / "pkg" / "boot" / f"vmlinuz-{RELEASE}"
    assert first.release == RELEASE
    assert first.config == entry / "pkg" / "boot" / f"config-{RELEASE}"
    assert first.modules == entry / "pkg" / "lib" / "modules" / RELEASE
    assert (first.modules / "modules.dep").is_file()  # depmod ran
    assert first.identity == {"origin": "debian", "spec": "debian:6.1", "package": PACKAGE, "version": VERSION,
                              "config_sha256": kernel.sha256_file(first.config)}
    assert kernel.bzimage_release(first.image) == RELEASE
    assert sorted(p.name for p in entry.iterdir()) == ["kernel.json", "pkg"]  # no .deb kept
    assert not list((cache / "kernels").glob(".fetch-*"))
    assert fake_apt == [f"{PACKAGE}={VERSION}"]

    second = kernel.fetch(DebianSpec("6.1"), cache, log)
    assert second == first
    assert fake_apt == [f"{PACKAGE}={VERSION}"], "the cached entry was downloaded again"
    assert "cached" in lines[-1]


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_fetch_debian_refuses_a_kernel_without_bpf_and_leaves_no_entry(tmp_path: Path, fake_apt: list[str]) -> None:
    shutil.move(_build_deb(tmp_path, "# CONFIG_BPF_SYSCALL is not set\n"), tmp_path / "the.deb")
    cache = tmp_path / "cache"
    lines, log = logs()
    with pytest.raises(UserError, match="CONFIG_BPF_SYSCALL") as caught:
        kernel.fetch(DebianSpec("6.1"), cache, log)
    assert PACKAGE in str(caught.value)
    assert list((cache / "kernels").iterdir()) == []  # neither an entry nor a temporary directory


def test_depmod_failure_is_an_infra_error(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="depmod"):
        kernel._depmod(tmp_path / "no-such-root", "6.1.0-nope")


def test_debian_entry_name_is_a_safe_file_name() -> None:
    name = kernel._debian_entry_name("linux-image-6.12.117+deb12-cloud-amd64-unsigned", "6.12.117-1~deb12u1")
    assert name == "linux-image-6.12.117+deb12-cloud-amd64-unsigned_6.12.117-1_deb12u1"
    assert "/" not in kernel._debian_entry_name("a/b", "1:2/3")


@pytest.mark.skipif(shutil.which("dpkg-deb") is None or shutil.which("depmod") is None, reason="needs dpkg-deb, depmod")
@pytest.mark.parametrize("exact", [VERSION, "6.1.0-99"])
def test_an_exact_spec_finds_its_package_in_the_cache_without_apt(tmp_path: Path, fake_apt: list[str],
                                                                  monkeypatch: pytest.MonkeyPatch, exact: str) -> None:
    """A reproducer pins one package; Debian drops old ones from its lists, so the cache is asked first."""
    shutil.move(_build_deb(tmp_path, GOOD_CONFIG), tmp_path / "the.deb")
    cache = tmp_path / "cache"
    first = kernel.fetch(DebianSpec("6.1"), cache, logs()[1])

    def no_lists(*args: object) -> None:
        raise AssertionError("the apt lists were asked for a cached exact kernel")

    monkeypatch.setattr(apt, "find_kernel_package", no_lists)
    again = kernel.fetch(DebianSpec("6.1", exact=exact), cache, logs()[1])
    assert again.image == first.image and fake_apt == [f"{PACKAGE}={VERSION}"]
    # The cache entry is shared; the run records what was asked.
    assert first.identity["spec"] == "debian:6.1" and again.identity["spec"] == f"debian:{exact}"
    assert again.identity["package"] == PACKAGE and again.identity["version"] == VERSION


def test_an_exact_spec_of_another_series_or_flavour_is_not_taken_from_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    entry = cache / "kernels" / "x"
    entry.mkdir(parents=True)
    image = entry / "vmlinuz"
    make_bzimage(image, f"{RELEASE} #1")
    identity = {"origin": "debian", "package": PACKAGE, "version": VERSION}
    (entry / "kernel.json").write_text(json.dumps(kernel.Kernel(image, RELEASE, None, None, identity).to_json()))
    assert kernel.cached_exact(DebianSpec("6.1", exact=VERSION), cache) == (PACKAGE, VERSION)
    assert kernel.cached_exact(DebianSpec("6.12", exact=VERSION), cache) is None
    assert kernel.cached_exact(DebianSpec("6.1", "rt-amd64", VERSION), cache) is None
    assert kernel.cached_exact(DebianSpec("6.1", exact="6.1.998-1"), cache) is None
    assert kernel.cached_exact(DebianSpec("6.1"), cache) is None  # the newest is the apt lists' to say
