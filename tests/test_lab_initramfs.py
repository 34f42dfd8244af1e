"""lab.initramfs: module names, modules.dep, load order, and a real cpio build."""
from __future__ import annotations

import gzip
import lzma
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from lab.guest import init as guestinit
from lab.guest import initramfs
from lab.core.errors import InfraError, UserError
from lab.core.paths import cache_dir
from lab.kernel import acquire
from lab.kernel.acquire import Kernel
from lab.kernel.spec import DebianSpec

# --- module_name / parse_modules_dep / builtin_names -------------------------------------------


@pytest.mark.parametrize("path, name", [
    ("kernel/drivers/virtio/virtio_pci.ko", "virtio_pci"),
    ("kernel/drivers/block/virtio_blk.ko.xz", "virtio_blk"),
    ("kernel/drivers/net/virtio_net.ko.zst", "virtio_net"),
    ("kernel/net/core/failover.ko.gz", "failover"),
    ("kernel/drivers/virtio/virtio-pci-legacy-dev.ko", "virtio_pci_legacy_dev"),
    ("virtio-mmio.ko.xz", "virtio_mmio"),
    ("kernel/fs/xz/xz.ko.xz", "xz"),
])
def test_module_name(path: str, name: str) -> None:
    assert initramfs.module_name(path) == name


def test_parse_modules_dep() -> None:
    text = (
        "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n"
        "kernel/drivers/virtio/virtio_ring.ko:\n"
        "kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz\n"
        "\n"
    )
    assert initramfs.parse_modules_dep(text) == {
        "kernel/drivers/virtio/virtio.ko": ["kernel/drivers/virtio/virtio_ring.ko"],
        "kernel/drivers/virtio/virtio_ring.ko": [],
        "kernel/drivers/net/virtio_net.ko.xz": ["kernel/drivers/net/net_failover.ko.xz",
                                                 "kernel/net/core/failover.ko.xz"],
    }


def test_builtin_names(tmp_path: Path) -> None:
    assert initramfs.builtin_names(None) == set()
    assert initramfs.builtin_names(tmp_path) == set()  # no modules.builtin
    (tmp_path / "modules.builtin").write_text("kernel/drivers/virtio/virtio.ko\nkernel/drivers/block/virtio-blk.ko\n")
    assert initramfs.builtin_names(tmp_path) == {"virtio", "virtio_blk"}


# --- load_order ----------------------------------------------------------------------------------

# Like depmod writes it: every module lists all its (transitive) dependencies, dependents first.
DEPS = initramfs.parse_modules_dep("""\
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko.gz:
kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio_pci_modern_dev.ko.gz kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/core/failover.ko.gz:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko.gz
kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko.gz kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/fuse/fuse.ko:
""")


def _assert_dependency_order(order: list[str], deps: dict[str, list[str]]) -> None:
    assert len(order) == len(set(order)), f"a module is loaded twice: {order}"
    for index, module in enumerate(order):
        for dependency in deps.get(module, []):
            assert dependency in order[:index], f"{module} is loaded before its dependency {dependency}"


def test_load_order_puts_dependencies_first_once_each() -> None:
    order = initramfs.load_order(initramfs.WANTED_MODULES, DEPS, builtin={"virtio_blk"})
    _assert_dependency_order(order, DEPS)
    assert order == [
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko.gz",
        "kernel/drivers/virtio/virtio_ring.ko",
        "kernel/drivers/virtio/virtio.ko",
        "kernel/drivers/virtio/virtio_pci.ko.xz",
        "kernel/net/core/failover.ko.gz",
        "kernel/drivers/net/net_failover.ko",
        "kernel/drivers/net/virtio_net.ko.xz",
    ]
    assert "kernel/fs/fuse/fuse.ko" not in order  # not wanted, not a dependency


def test_load_order_skips_builtins() -> None:
    assert initramfs.load_order(("virtio_blk",), DEPS, builtin={"virtio_blk"}) == []
    everything_builtin = {"virtio_pci", "virtio_blk", "virtio_net"}
    assert initramfs.load_order(initramfs.WANTED_MODULES, {}, everything_builtin) == []


def test_load_order_missing_module_names_it() -> None:
    with pytest.raises(UserError) as caught:
        initramfs.load_order(initramfs.WANTED_MODULES, DEPS, builtin=set())
    assert "virtio_blk" in str(caught.value)


def test_load_order_tolerates_a_dependency_cycle() -> None:
    cyclic = {"a.ko": ["b.ko"], "b.ko": ["a.ko"]}
    assert sorted(initramfs.load_order(("a",), cyclic, set())) == ["a.ko", "b.ko"]


def test_load_order_on_a_real_debian_modules_dep() -> None:
    """Debian's 6.1 cloud kernel from the lab's own cache (the e2e boots fetched it already;
    alone, this downloads it once with the host's apt)."""
    fetched = acquire.fetch(DebianSpec("6.1"), cache_dir(), lambda message: None)
    assert fetched.modules is not None
    directory = fetched.modules
    modules_dep = directory / "modules.dep"
    deps = initramfs.parse_modules_dep(modules_dep.read_text())
    builtin = initramfs.builtin_names(directory)
    order = initramfs.load_order(initramfs.WANTED_MODULES, deps, builtin)
    _assert_dependency_order(order, deps)
    loaded = {initramfs.module_name(m) for m in order}
    for wanted in initramfs.WANTED_MODULES:
        assert wanted in loaded or wanted in builtin
    for module in order:
        assert (directory / module).is_file()


# --- build ---------------------------------------------------------------------------------------

PLAIN = {
    "kernel/drivers/virtio/virtio.ko": b"\x7fELF fake virtio",
    "kernel/drivers/virtio/virtio_ring.ko": b"\x7fELF fake virtio_ring",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko.gz": b"\x7fELF fake virtio_pci_modern_dev",
    "kernel/drivers/virtio/virtio_pci.ko.xz": b"\x7fELF fake virtio_pci " * 50,
    "kernel/net/core/failover.ko.gz": b"\x7fELF fake failover",
    "kernel/drivers/net/net_failover.ko": b"\x7fELF fake net_failover",
    "kernel/drivers/net/virtio_net.ko.xz": b"\x7fELF fake virtio_net",
    "kernel/fs/fuse/fuse.ko": b"\x7fELF fake fuse",
}


def _compress(path: Path, data: bytes) -> bytes:
    if path.suffix == ".xz":
        return lzma.compress(data)
    if path.suffix == ".gz":
        return gzip.compress(data)
    if path.suffix == ".zst":
        return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout
    return data


def _write_module(modules: Path, relative: str, data: bytes) -> None:
    path = modules / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_compress(path, data))


@pytest.fixture
def fake_kernel(tmp_path: Path) -> Kernel:
    modules = tmp_path / "lib" / "modules" / "6.9.0-fake"
    for relative, data in PLAIN.items():
        _write_module(modules, relative, data)
    (modules / "modules.dep").write_text("".join(f"{path}: {' '.join(deps)}\n" for path, deps in DEPS.items()))
    (modules / "modules.builtin").write_text("kernel/drivers/block/virtio_blk.ko\nkernel/lib/crc32.ko\n")
    image = tmp_path / "bzImage"
    image.write_bytes(b"not booted in this test")
    return Kernel(image, "6.9.0-fake", None, modules, {"origin": "path"})


def _unpack(archive: Path, into: Path) -> list[str]:
    names = subprocess.run(["cpio", "--quiet", "-t"], stdin=archive.open("rb"), capture_output=True, text=True,
                           check=True).stdout.split()
    into.mkdir()
    subprocess.run(["cpio", "--quiet", "-idm", "--no-absolute-filenames"], cwd=into, stdin=archive.open("rb"),
                   check=True)
    return names


def _insmod_lines(init_text: str) -> list[str]:
    return re.findall(r"^insmod /modules/(\S+)", init_text, flags=re.M)


def test_build_produces_a_bootable_looking_cpio(fake_kernel: Kernel, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    archive = initramfs.build(fake_kernel, cache)
    assert archive.parent == cache / "initramfs"
    assert archive.name.startswith("6.9.0-fake-") and archive.suffix == ".cpio"
    assert not list(archive.parent.glob(".build-*"))

    root = tmp_path / "unpacked"
    names = _unpack(archive, root)
    expected_order = initramfs.load_order(initramfs.WANTED_MODULES, DEPS, {"virtio_blk", "crc32"})
    expected_files = [initramfs.module_name(m) + ".ko" for m in expected_order]
    assert set(names) == {".", "bin", "bin/busybox", "dev", "dev/console", "init", "modules",
                          *(f"modules/{f}" for f in expected_files)}

    init = root / "init"
    assert init.stat().st_mode & 0o111 == 0o111
    text = init.read_text()
    assert text.startswith("#!/bin/busybox sh\n")
    assert guestinit.STAGE1_MARKER in text
    assert _insmod_lines(text) == expected_files  # dependency order
    assert text == guestinit.render_stage1(expected_files)

    assert (root / "bin" / "busybox").read_bytes() == initramfs.BUSYBOX.read_bytes()
    assert os.access(root / "bin" / "busybox", os.X_OK)

    console = os.lstat(root / "dev" / "console")
    assert stat.S_ISCHR(console.st_mode)
    assert (os.major(console.st_rdev), os.minor(console.st_rdev)) == (5, 1)

    by_name = {initramfs.module_name(path): data for path, data in PLAIN.items()}
    for file in expected_files:
        # Decompressed: busybox insmod hands the bytes straight to init_module().
        assert (root / "modules" / file).read_bytes() == by_name[file.removesuffix(".ko")]


def test_cpio_entries_are_owned_by_root(fake_kernel: Kernel, tmp_path: Path) -> None:
    archive = initramfs.build(fake_kernel, tmp_path / "cache")
    listing = subprocess.run(["cpio", "--quiet", "-tv", "--numeric-uid-gid"], stdin=archive.open("rb"),
                             capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        fields = line.split()
        assert fields[2:4] == ["0", "0"], line


def test_second_build_returns_the_cached_file(fake_kernel: Kernel, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = initramfs.build(fake_kernel, cache)
    before = first.stat().st_mtime_ns

    def no_rebuild() -> None:
        raise AssertionError("build() rebuilt a cached initramfs")

    monkeypatch.setattr(initramfs, "_check_busybox", no_rebuild)
    second = initramfs.build(fake_kernel, cache)
    assert second == first
    assert second.stat().st_mtime_ns == before
    assert sorted(p.name for p in (cache / "initramfs").iterdir()) == [first.name]


def test_rebuilt_modules_are_not_served_from_a_stale_cache(fake_kernel: Kernel, tmp_path: Path) -> None:
    # A local kernel rebuilt in place: same release, same paths, new module contents.
    cache = tmp_path / "cache"
    initramfs.build(fake_kernel, cache)
    assert fake_kernel.modules is not None
    _write_module(fake_kernel.modules, "kernel/drivers/virtio/virtio.ko", b"\x7fELF rebuilt virtio")
    archive = initramfs.build(fake_kernel, cache)
    root = tmp_path / "unpacked"
    _unpack(archive, root)
    assert (root / "modules" / "virtio.ko").read_bytes() == b"\x7fELF rebuilt virtio"


def test_build_for_a_kernel_without_modules(tmp_path: Path) -> None:
    image = tmp_path / "bzImage"
    image.write_bytes(b"x")
    archive = initramfs.build(Kernel(image, "6.9.0-mono", None, None, {}), tmp_path / "cache")
    root = tmp_path / "unpacked"
    names = _unpack(archive, root)
    assert not [n for n in names if n.startswith("modules/")]
    assert _insmod_lines((root / "init").read_text()) == []


def test_build_without_a_needed_module_is_a_user_error(fake_kernel: Kernel, tmp_path: Path) -> None:
    assert fake_kernel.modules is not None
    (fake_kernel.modules / "modules.builtin").write_text("")  # virtio_blk is now nowhere
    with pytest.raises(UserError, match="virtio_blk"):
        initramfs.build(fake_kernel, tmp_path / "cache")
    assert not (tmp_path / "cache" / "initramfs").exists()


def test_check_busybox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(initramfs, "BUSYBOX", tmp_path / "busybox")
    with pytest.raises(InfraError, match="busybox-static"):
        initramfs._check_busybox()
    monkeypatch.setattr(initramfs, "BUSYBOX", Path(shutil.which("ls") or "/bin/ls").resolve())  # dynamic
    with pytest.raises(InfraError, match="dynamically linked"):
        initramfs._check_busybox()


@pytest.mark.parametrize("suffix", [
    ".ko", ".ko.xz", ".ko.gz",
    pytest.param(".ko.zst", marks=pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd is not installed")),
])
def test_decompressed(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"m{suffix}"
    payload = b"\x7fELF payload " + suffix.encode()
    path.write_bytes(_compress(path, payload))
    if suffix != ".ko":
        assert path.read_bytes() != payload
    assert initramfs._decompressed(path) == payload
