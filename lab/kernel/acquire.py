"""Kernel acquisition: a Debian package or a local image, into an immutable cache entry."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core import apt, lock
from ..core.errors import InfraError, UserError
from ..core.files import sha256_file
from ..core.log import Log
from .kconfig import parse_config
from .spec import BuildSpec, DebianSpec, KernelSpec, PathSpec

REQUIRED_CONFIG = {"CONFIG_BPF_SYSCALL": "y"}
# What `uname -r` can say: UTS_RELEASE is at most 64 bytes; the lab takes the characters
# kernel releases are made of (6.1.0-28-cloud-amd64, 6.12.0-rc1+, 5.10.0~lab.1).
RELEASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}")


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
    # The string is the kernel's data: it names cache files and lines of reproducer.sh, so only
    # what a `uname -r` can be (64 bytes, no '/', no space, no control character) is taken.
    if not RELEASE.fullmatch(release):
        raise UserError(f"kernel {image}: its version string {release[:80]!r} is not a kernel release")
    return release


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


def kernel_entry(directory: Path) -> tuple[Kernel | None, str]:
    """The kernel a cache entry (kernels/<name>, builds/<id>) holds, or None and why not
    ("missing" when there is no entry). A truncated kernel.json or a lost file is a reason to
    fetch or build again, never a traceback."""
    meta = directory / "kernel.json"
    if not directory.exists():
        return None, "missing"
    try:
        kernel = Kernel.from_json(json.loads(meta.read_text()))
    except FileNotFoundError:
        return None, "has no kernel.json"
    except (OSError, ValueError, KeyError, TypeError, AttributeError, AssertionError) as exc:
        return None, f"has an unreadable kernel.json ({type(exc).__name__}: {exc})"
    if not kernel.image.is_file():
        return None, f"has lost its kernel image {kernel.image}"
    if kernel.config is not None and not kernel.config.is_file():
        return None, f"has lost its config {kernel.config}"
    if kernel.modules is not None and not (kernel.modules / "modules.dep").is_file():
        return None, f"has lost its modules ({kernel.modules / 'modules.dep'})"
    return kernel, ""


def debian_entry(cache: Path, package: str, version: str) -> Path:
    """The cache entry of one Debian kernel package version."""
    return cache / "kernels" / _debian_entry_name(package, version)


def cached_exact(spec: DebianSpec, cache: Path) -> tuple[str, str] | None:
    """(package, version) of a cached kernel an exact spec names by package version or ABI name.
    A reproducer pins one package; Debian drops old ones from its lists, the cache keeps them."""
    if spec.exact is None:
        return None
    for meta in sorted((cache / "kernels").glob("[!.]*/kernel.json")):
        kernel, _ = kernel_entry(meta.parent)
        if kernel is None or kernel.identity.get("origin") != "debian":
            continue
        package, version = kernel.identity.get("package", ""), kernel.identity.get("version", "")
        if not apt.kernel_package_pattern(spec.series, spec.flavour).match(package):
            continue
        if spec.exact in (version, apt.kernel_abi(package, spec.flavour)):
            return package, version
    return None


def resolve_debian(spec: DebianSpec, cache: Path) -> tuple[str, str]:
    """The (package, version) a Debian spec names: the newest of the series, or the exact one
    (from the cache when it holds it, else from the apt lists)."""
    if spec.exact is None:
        return apt.newest_kernel_package(spec.series, spec.flavour, cache / "apt-newest.json")
    found = cached_exact(spec, cache)
    if found is not None:
        return found
    picked = apt.find_kernel_package(spec.series, spec.flavour, spec.exact)
    return picked.package, picked.version


def fetch_debian(spec: DebianSpec, cache: Path, log: Log) -> Kernel:
    package, version = resolve_debian(spec, cache)
    entry = debian_entry(cache, package, version)
    entry.parent.mkdir(parents=True, exist_ok=True)
    # Under the entry's lock: a second lab asking for the same kernel waits, then finds it here.
    with lock.locked(entry, log, f"kernel {package} {version}"):
        cached, problem = kernel_entry(entry)
        if cached is not None:
            log(f"kernel: {package} {version} (cached, nothing downloaded)")
            return _as_asked(cached, spec)
        if problem != "missing":
            log(f"warning: cached kernel {entry} {problem}; downloading it again")
        staging = lock.staging_path(entry, ".fetch-")
        shutil.rmtree(staging, ignore_errors=True)  # what a killed fetch of this entry left
        try:
            return _as_asked(_fetch_into(staging, entry, spec, package, version, log), spec)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _as_asked(kernel: Kernel, spec: DebianSpec) -> Kernel:
    """The cache entry is shared by every spec naming the package; the run records the one asked."""
    return Kernel(kernel.image, kernel.release, kernel.config, kernel.modules, {**kernel.identity, "spec": spec.text})


def _fetch_into(staging: Path, entry: Path, spec: DebianSpec, package: str, version: str, log: Log) -> Kernel:
    log(f"kernel: downloading {package} {version}")
    deb = apt.download(package, version, staging / "deb")
    root = staging / "entry"
    (root / "pkg").mkdir(parents=True)
    _run_checked(["dpkg-deb", "-x", str(deb), str(root / "pkg")], f"unpacking {deb.name}")
    images = sorted((root / "pkg" / "boot").glob("vmlinuz-*"))
    if len(images) != 1:
        raise InfraError(f"{package}: expected one boot/vmlinuz-*, found {len(images)}")
    release = images[0].name.removeprefix("vmlinuz-")
    config = root / "pkg" / "boot" / f"config-{release}"
    check_config(config, f"{spec.text} ({package})")
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
    lock.install(root, entry)  # atomic: a half-extracted package is never taken for a cached one
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


def _check_local(spec: PathSpec) -> tuple[str, Path | None]:
    """A kernel path's release and config, or UserError naming what is wrong with it."""
    if not spec.image.exists():
        raise UserError(f"kernel {spec.image}: no such file")
    if not spec.image.is_file():
        raise UserError(f"kernel {spec.image}: not a regular file")
    release = bzimage_release(spec.image)
    config = _find_config(spec)
    if config:
        check_config(config, f"kernel {spec.image}")
    if spec.modules is not None and not (spec.modules / "modules.dep").is_file():
        raise UserError(f"modules {spec.modules}: no modules.dep (run depmod for {release})")
    return release, config


def use_local(spec: PathSpec, log: Log) -> Kernel:
    release, config = _check_local(spec)
    if not config:
        log(f"warning: no config beside {spec.image}; CONFIG_BPF_SYSCALL is not checked")
    modules = spec.modules
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
    kernel, problem = kernel_entry(meta.parent)
    if kernel is None:
        # Only the request that made it can make it again, and the id does not say what that was.
        raise InfraError(f"the cache entry of build:{build_id} ({meta.parent}) {problem}; "
                         "run the `lab kernel build` that made it again to replace it")
    return kernel


def check(spec: KernelSpec, cache: Path) -> None:
    """What fetch would refuse, found without downloading or hashing anything: an unknown Debian
    series (the host's apt lists), an unknown build id, a path that is not a bzImage with bpf(2).
    A matrix or a validation checks every kernel this way before its first boot or build."""
    if isinstance(spec, DebianSpec):
        resolve_debian(spec, cache)
    elif isinstance(spec, BuildSpec):
        load_build(spec.build_id, cache)
    else:
        _check_local(spec)


def fetch(spec: KernelSpec, cache: Path, log: Log) -> Kernel:
    if isinstance(spec, DebianSpec):
        return fetch_debian(spec, cache, log)
    if isinstance(spec, BuildSpec):
        built = load_build(spec.build_id, cache)
        log(f"kernel: build:{spec.build_id} ({built.release})")
        return built
    return use_local(spec, log)
