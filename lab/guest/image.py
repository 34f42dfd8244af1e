"""The guest root filesystem: one Debian image shared by every kernel, cached by its recipe hash.

Built with mmdebstrap into a directory and turned into ext4 with `mkfs.ext4 -d` (no loop
mounts). The recipe is everything that decides the image's content: images/ files, the apt
sources, the Debian release and the lab's SSH keys.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..core import apt
from ..core.errors import InfraError
from ..core.log import Log
from ..core.paths import IMAGES_DIR
from ..kernel.acquire import sha256_file
from . import init as guestinit
from .keys import LabKeys

FORMAT_VERSION = "1"
UNPRIVILEGED_USER = "labuser"  # for the pin suite's permission tests


@dataclass(frozen=True)
class ImageRecipe:
    codename: str
    sources: tuple[apt.AptSource, ...]
    packages: tuple[str, ...]
    files: dict[str, str]  # path in the guest -> content
    keys: LabKeys

    def digest(self) -> str:
        hasher = hashlib.sha256()
        hasher.update(FORMAT_VERSION.encode())
        # How the image is made is part of the recipe too: a change to this module rebuilds.
        hasher.update(Path(__file__).read_bytes())
        hasher.update(self.codename.encode())
        for source in self.sources:
            hasher.update(source.one_line().encode())
        hasher.update("\n".join(self.packages).encode())
        for path in sorted(self.files):
            hasher.update(f"\0{path}\0{self.files[path]}".encode())
        hasher.update(self.keys.client_public.encode())
        hasher.update(self.keys.host_public.encode())
        return hasher.hexdigest()


@dataclass(frozen=True)
class Image:
    path: Path
    digest: str


def read_packages(path: Path = IMAGES_DIR / "packages.txt") -> tuple[str, ...]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return tuple(line for line in lines if line)


def default_recipe(keys: LabKeys) -> ImageRecipe:
    codename = apt.host_codename()
    files = {
        "/sbin/lab-init": guestinit.render_stage2(),
        "/etc/ssh/sshd_config": guestinit.render_sshd_config(),
    }
    return ImageRecipe(codename, tuple(apt.debian_sources(codename)), read_packages(), files, keys)


def _run_logged(argv: list[str], log_path: Path, what: str) -> None:
    with log_path.open("ab") as log_file:
        try:
            done = subprocess.run(argv, stdout=log_file, stderr=subprocess.STDOUT, check=False)
        except FileNotFoundError as exc:
            raise InfraError(f"{argv[0]} is not installed (run `make setup`)") from exc
    if done.returncode != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        raise InfraError(f"{what} failed (exit {done.returncode}): {tail[0]} — full log: {log_path}")


def _install_files(root: Path, recipe: ImageRecipe) -> None:
    for guest_path, content in recipe.files.items():
        target = root / guest_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(0o755 if guest_path.startswith(("/sbin/", "/usr/sbin/", "/usr/bin/")) else 0o644)
    ssh = root / "etc" / "ssh"
    for old in ssh.glob("ssh_host_*"):  # the package's own keys: the lab pins its own
        old.unlink()
    shutil.copyfile(recipe.keys.host_private, ssh / "ssh_host_ed25519_key")
    (ssh / "ssh_host_ed25519_key").chmod(0o600)
    (ssh / "ssh_host_ed25519_key.pub").write_text(recipe.keys.host_public + "\n")
    dot_ssh = root / "root" / ".ssh"
    dot_ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    (dot_ssh / "authorized_keys").write_text(recipe.keys.client_public + "\n")
    (dot_ssh / "authorized_keys").chmod(0o600)
    _lock_root_password(root / "etc" / "shadow")


def _lock_root_password(shadow: Path) -> None:
    lines = shadow.read_text().splitlines()
    for index, line in enumerate(lines):
        fields = line.split(":")
        if fields[0] == "root":
            # "*": no password can ever match. Not "!": without PAM, sshd takes "!" for a
            # locked account and refuses key logins too.
            fields[1] = "*"
            lines[index] = ":".join(fields)
    shadow.write_text("\n".join(lines) + "\n")


def _image_size_bytes(root: Path) -> int:
    used = int(subprocess.run(["du", "-sb", str(root)], capture_output=True, text=True, check=True).stdout.split()[0])
    # Room for the suites' files and ext4's own metadata; the disk is sparse, so this is cheap.
    return (used * 3 // 2 + (512 << 20)) // (1 << 20) * (1 << 20)


def _cache_problem(recorded: dict[str, object], digest: str, path: Path) -> str | None:
    """Why a cached image cannot be used, or None. The file's sha256 is only recomputed when
    its size or mtime changed, so a normal cache hit costs a stat, not a read of the image."""
    if recorded.get("digest") != digest:
        return "does not match its recipe hash"
    stat = path.stat()
    if (stat.st_size, stat.st_mtime_ns) == (recorded.get("rootfs_size"), recorded.get("rootfs_mtime_ns")):
        return None
    if sha256_file(path) != recorded.get("rootfs_sha256"):
        return "does not match the sha256 recorded when it was built"
    return None


def build(recipe: ImageRecipe, cache: Path, log: Log, force: bool = False) -> Image:
    digest = recipe.digest()
    directory = cache / "images" / digest[:16]
    path = directory / "rootfs.ext4"
    meta = directory / "image.json"
    if not force and meta.is_file() and path.is_file():
        problem = _cache_problem(json.loads(meta.read_text()), digest, path)
        if problem is None:
            log(f"image: {digest[:16]} (cached, nothing rebuilt)")
            return Image(path, digest)
        log(f"warning: cached image {path} {problem}; rebuilding")
    log(f"image: building {digest[:16]} with mmdebstrap ({recipe.codename}); this takes a few minutes")
    started = time.monotonic()
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".build-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "root"
        build_log = tmp / "build.log"
        _run_logged(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--mode=root",
                "--format=directory",
                "--include=" + ",".join(recipe.packages),
                # Documentation and translations are dead weight in a test guest.
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "--customize-hook=chroot \"$1\" useradd --create-home --shell /bin/sh " + UNPRIVILEGED_USER,
                recipe.codename,
                str(root),
                *(source.one_line() for source in recipe.sources),
            ],
            build_log,
            "mmdebstrap",
        )
        _install_files(root, recipe)
        out = tmp / "rootfs.ext4"
        _run_logged(
            ["mkfs.ext4", "-q", "-F", "-L", "labroot", "-d", str(root), str(out), str(_image_size_bytes(root) // 1024) + "k"],
            build_log,
            "mkfs.ext4",
        )
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir()
        out.rename(path)
        shutil.copyfile(build_log, directory / "build.log")
        stat = path.stat()
        meta.write_text(json.dumps({"digest": digest, "codename": recipe.codename, "packages": list(recipe.packages),
                                    "sources": [s.one_line() for s in recipe.sources],
                                    "rootfs_sha256": sha256_file(path), "rootfs_size": stat.st_size,
                                    "rootfs_mtime_ns": stat.st_mtime_ns,
                                    "build_seconds": round(time.monotonic() - started, 1)}, indent=2) + "\n")
    log(f"image: built in {time.monotonic() - started:.0f} s")
    return Image(path, digest)


