"""The per-kernel initramfs: static busybox, this kernel's virtio modules, and the stage-1 init.

Why an initramfs (and not modules on a second disk): Debian kernels build virtio-blk and
virtio-net as modules, so something must load them before the root disk exists. A small
initramfs does that for any kernel, lets the root be virtio-blk (migratable, so a booted
guest can later be snapshotted; NVMe is not migratable in QEMU 7.2), and keeps the root
image identical for every kernel. Built kernels with everything built in simply get an
initramfs without modules.
"""
from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..core import lock
from ..core.errors import InfraError, UserError
from ..core.files import safe_name, sha256_file
from ..core.log import Log, stderr
from ..kernel.acquire import Kernel
from . import init as guestinit

# What the guest needs before its root filesystem: the disk, the network, and their buses.
WANTED_MODULES = ("virtio_pci", "virtio_blk", "virtio_net")
BUSYBOX = Path("/bin/busybox")
FORMAT_VERSION = "1"


def module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    for suffix in (".xz", ".zst", ".gz"):
        base = base.removesuffix(suffix)
    return base.removesuffix(".ko").replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """modules.dep as {module path: [dependency paths]}."""
    deps: dict[str, list[str]] = {}
    for line in text.splitlines():
        if ":" in line:
            path, rest = line.split(":", 1)
            deps[path.strip()] = rest.split()
    return deps


def load_order(wanted: tuple[str, ...], deps: dict[str, list[str]], builtin: set[str]) -> list[str]:
    """Module paths to insmod, each after its dependencies; built-in modules are skipped.

    A wanted module that is neither built in nor a module means the kernel cannot boot the
    lab's guest, so that is an error naming it.
    """
    by_name = {module_name(path): path for path in deps}
    order: list[str] = []
    seen: set[str] = set()

    def visit(path: str) -> None:
        if path in seen:
            return
        seen.add(path)
        for dependency in deps.get(path, []):
            visit(dependency)
        order.append(path)

    for name in wanted:
        if name in by_name:
            visit(by_name[name])
        elif name not in builtin:
            raise UserError(f"kernel has no {name} (neither built in nor a module): the lab's guest needs it")
    return order


def builtin_names(modules_dir: Path | None) -> set[str]:
    if modules_dir is None or not (modules_dir / "modules.builtin").is_file():
        return set()
    return {module_name(line) for line in (modules_dir / "modules.builtin").read_text().split()}


def _decompressed(path: Path) -> bytes:
    """busybox insmod hands the buffer to init_module(), which wants a plain ELF."""
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    return data


def modules_for(kernel: Kernel) -> list[str]:
    if kernel.modules is None:
        # No modules directory: the kernel must have everything built in (checked at boot).
        return []
    deps = parse_modules_dep((kernel.modules / "modules.dep").read_text())
    return load_order(WANTED_MODULES, deps, builtin_names(kernel.modules))


def _check_busybox() -> None:
    if not BUSYBOX.is_file():
        raise InfraError(f"{BUSYBOX} is missing (apt package busybox-static; run `make setup`)")
    ldd = subprocess.run(["ldd", str(BUSYBOX)], capture_output=True, text=True, check=False)
    if "not a dynamic executable" not in (ldd.stdout + ldd.stderr):
        raise InfraError(f"{BUSYBOX} is dynamically linked; the initramfs needs busybox-static")


def build(kernel: Kernel, cache: Path, log: Log = stderr) -> Path:
    """The initramfs for this kernel, cached by kernel identity and init script."""
    modules = modules_for(kernel)
    init_script = guestinit.render_stage1([module_name(m) + ".ko" for m in modules])
    # The modules' contents too: a local kernel rebuilt in place keeps its release and paths.
    digests = [sha256_file(kernel.modules / m) for m in modules] if kernel.modules is not None else []
    key = hashlib.sha256(
        "\n".join([FORMAT_VERSION, kernel.release, str(kernel.image), init_script, *modules, *digests]).encode()
    ).hexdigest()[:16]
    # The release came from a kernel: never a path piece as it is.
    out = cache / "initramfs" / f"{safe_name(kernel.release, 64)}-{key}.cpio"
    if out.is_file():  # renamed into place whole, so a file there is a finished one
        return out
    _check_busybox()
    out.parent.mkdir(parents=True, exist_ok=True)
    # Two labs booting the same kernel at once: the second waits, then takes the first one's.
    with lock.locked(out, log, f"initramfs {out.name}"):
        if not out.is_file():
            _write(out, modules, kernel, init_script)
    return out


def _write(out: Path, modules: list[str], kernel: Kernel, init_script: str) -> None:
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as tmp_name:
        staging = Path(tmp_name) / "root"
        for sub in ("bin", "dev", "modules"):
            (staging / sub).mkdir(parents=True)
        shutil.copy2(BUSYBOX, staging / "bin" / "busybox")
        # The kernel opens /dev/console for init before anything can mount devtmpfs.
        os.mknod(staging / "dev" / "console", 0o600 | 0o020000, os.makedev(5, 1))
        for module in modules:
            assert kernel.modules is not None
            (staging / "modules" / (module_name(module) + ".ko")).write_bytes(_decompressed(kernel.modules / module))
        init = staging / "init"
        init.write_text(init_script)
        init.chmod(0o755)
        archive = Path(tmp_name) / "initramfs.cpio"
        names = subprocess.run(["find", "."], cwd=staging, capture_output=True, text=True, check=True).stdout
        with archive.open("wb") as handle:
            subprocess.run(
                ["cpio", "--quiet", "-o", "-H", "newc", "--owner=0:0"],
                cwd=staging, input=names.encode(), stdout=handle, check=True,
            )
        archive.rename(out)
