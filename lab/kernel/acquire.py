"""Kernel acquisition: a Debian package or a local image, into an immutable cache entry."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core import apt
from ..core.errors import InfraError, UserError
from ..core.log import Log
from .kconfig import parse_config
from .spec import BuildSpec, DebianSpec, KernelSpec, PathSpec

REQUIRED_CONFIG = {"CONFIG_BPF_SYSCALL": "y"}


@dataclass(frozen=True)
class Kernel:
    image: Path
    release: str  # `uname -r` of this kernel
    config: Path | None
    modules: Path | None  # the lib/modules/<release> directory, with modules.dep
    identity: dict[str, str] = field(default_factory=dict)  # origin, package, version, config_sha256

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        for key in ("image", "config", "modules"):
            data[key] = str(data[key]) if data[key] else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> "Kernel":
        def path(key: str) -> Path | None:
            value = data.get(key)
            return Path(str(value)) if value else None

        image = path("image")
        assert image is not None
        identity = data.get("identity") or {}
        assert isinstance(identity, dict)
        return cls(image, str(data["release"]), path("config"), path("modules"), {str(k): str(v) for k, v in identity.items()})


def check_config(config: Path, what: str) -> None:
    values = parse_config(config.read_text(errors="replace"))
    for symbol, wanted in REQUIRED_CONFIG.items():
        if values.get(symbol, "n") != wanted:
            raise UserError(f"{what}: kernel config has no {symbol}={wanted}, so it has no bpf(2)")


def bzimage_release(image: Path) -> str:
    """The release string from a bzImage's setup header; UserError if it is not one.

    The x86 boot protocol puts "HdrS" at 0x202 and a pointer to the version string
    (relative to 0x200) at 0x20e.
    """
    try:
        with image.open("rb") as handle:
            head = handle.read(0x8000)
    except OSError as exc:
        raise UserError(f"kernel {image}: {exc.strerror}") from exc
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        raise UserError(f"kernel {image}: not an x86 bzImage (no HdrS boot header)")
    offset = int.from_bytes(head[0x20E:0x210], "little") + 0x200
    raw = head[offset : offset + 256].split(b"\0", 1)[0]
    release = raw.split(b" ", 1)[0].decode(errors="replace")
    if not release:
        raise UserError(f"kernel {image}: bzImage has no version string")
    return release


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _depmod(root: Path, release: str) -> None:
    """Debian packages leave modules.dep to install time; generate it for the initramfs."""
    try:
        subprocess.run(["depmod", "-b", str(root), release], check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise InfraError("depmod is not installed (apt package kmod; run `make setup`)") from exc
    except subprocess.CalledProcessError as exc:
        raise InfraError(f"depmod failed for {release}: {exc.stderr.strip()}") from exc


def _run_checked(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InfraError(f"{what} failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}")


def _debian_entry_name(package: str, version: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]", "_", f"{package}_{version}")


def fetch_debian(spec: DebianSpec, cache: Path, log: Log) -> Kernel:
    package, version = apt.resolve_kernel_package(spec.series, spec.flavour)
    entry = cache / "kernels" / _debian_entry_name(package, version)
    meta = entry / "kernel.json"
    if meta.is_file():
        log(f"kernel: {package} {version} (cached, nothing downloaded)")
        return Kernel.from_json(json.loads(meta.read_text()))
    log(f"kernel: downloading {package} {version}")
    entry.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=entry.parent, prefix=".fetch-") as tmp_name:
        tmp = Path(tmp_name)
        deb = apt.download(package, version, tmp / "deb")
        root = tmp / "entry"
        (root / "pkg").mkdir(parents=True)
        _run_checked(["dpkg-deb", "-x", str(deb), str(root / "pkg")], f"unpacking {deb.name}")
        images = sorted((root / "pkg" / "boot").glob("vmlinuz-*"))
        if len(images) != 1:
            raise InfraError(f"{package}: expected one boot/vmlinuz-*, found {len(images)}")
        release = images[0].name.removeprefix("vmlinuz-")
        config = root / "pkg" / "boot" / f"config-{release}"
        check_config(config, f"debian:{spec.series} ({package})")
        _depmod(root / "pkg", release)
        identity = {
            "origin": "debian",
            "spec": f"debian:{spec.series}",
            "package": package,
            "version": version,
            "config_sha256": sha256_file(config),
        }
        final = Kernel(
            entry / "pkg" / "boot" / images[0].name,
            release,
            entry / "pkg" / "boot" / config.name,
            entry / "pkg" / "lib" / "modules" / release,
            identity,
        )
        (root / "kernel.json").write_text(json.dumps(final.to_json(), indent=2) + "\n")
        shutil.rmtree(tmp / "deb")
        root.rename(entry)  # atomic: a half-extracted package is never taken for a cached one
    return final


def _find_config(spec: PathSpec) -> Path | None:
    candidates = [spec.config] if spec.config else [
        spec.image.parent / "config",
        spec.image.parent / ".config",
        spec.image.parent / f"config-{spec.image.name.removeprefix('vmlinuz-')}",
    ]
    for candidate in candidates:
        if candidate and candidate.is_file():
            return candidate
    if spec.config:
        raise UserError(f"kernel config {spec.config}: no such file")
    return None


def use_local(spec: PathSpec, log: Log) -> Kernel:
    if not spec.image.exists():
        raise UserError(f"kernel {spec.image}: no such file")
    if not spec.image.is_file():
        raise UserError(f"kernel {spec.image}: not a regular file")
    release = bzimage_release(spec.image)
    config = _find_config(spec)
    if config:
        check_config(config, f"kernel {spec.image}")
    else:
        log(f"warning: no config beside {spec.image}; CONFIG_BPF_SYSCALL is not checked")
    modules = spec.modules
    if modules is not None:
        if not (modules / "modules.dep").is_file():
            raise UserError(f"modules {modules}: no modules.dep (run depmod for {release})")
    identity = {"origin": "path", "spec": str(spec.image), "image_sha256": sha256_file(spec.image)}
    if config:
        identity["config_sha256"] = sha256_file(config)
    log(f"kernel: {spec.image} ({release})")
    return Kernel(spec.image.resolve(), release, config, modules, identity)


def load_build(build_id: str, cache: Path) -> Kernel:
    """The kernel of `build:<id>`, from `lab kernel build`'s cache."""
    meta = cache / "builds" / build_id / "kernel.json"
    if build_id.startswith(".") or "/" in build_id or not meta.is_file():
        known = sorted(p.parent.name for p in (cache / "builds").glob("[!.]*/kernel.json"))
        hint = f"; built: {', '.join(known)}" if known else "; none built yet (lab kernel build)"
        raise UserError(f"unknown kernel build:{build_id}{hint}")
    return Kernel.from_json(json.loads(meta.read_text()))


def fetch(spec: KernelSpec, cache: Path, log: Log) -> Kernel:
    if isinstance(spec, DebianSpec):
        return fetch_debian(spec, cache, log)
    if isinstance(spec, BuildSpec):
        built = load_build(spec.build_id, cache)
        log(f"kernel: build:{spec.build_id} ({built.release})")
        return built
    return use_local(spec, log)
