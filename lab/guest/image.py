"""The guest root filesystem: one Debian image shared by every kernel, cached by its recipe hash.

Built with mmdebstrap into a directory and turned into ext4 with `mkfs.ext4 -d` (no loop
mounts). The recipe is everything that decides the image's content: images/ files, the apt
sources, the Debian release and the lab's SSH keys.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..core import apt, lock, mounts, progress
from ..core.errors import InfraError
from ..core.files import sha256_file, write_json_atomic
from ..core.log import Log
from ..core.paths import IMAGES_DIR
from . import init as guestinit
from .keys import LabKeys

FORMAT_VERSION = "1"
UNPRIVILEGED_USER = "labuser"  # for the pin suite's permission tests
STOP_GRACE_SECONDS = 30.0  # an interrupted mmdebstrap unmounting what it mounted, then SIGKILL


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


def _run_logged(argv: list[str], log_path: Path, what: str, keep_fds: tuple[int, ...] = ()) -> None:
    """Run a build step into the build log. Interrupted (Ctrl-C, SIGTERM, any exception), the
    step is stopped in order before the exception goes on: see _stop."""
    with log_path.open("ab") as log_file:
        try:
            # A session of its own, so that the whole step (mmdebstrap's apt and dpkg too) is
            # signalled at once, and by the lab only, in the order _stop takes.
            proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, pass_fds=keep_fds)
        except FileNotFoundError as exc:
            raise InfraError(f"{argv[0]} is not installed (run `make setup`)") from exc
        try:
            with progress.showing(f"image: {what}", progress.last_line(log_path)):
                returncode = proc.wait()
        except BaseException:
            _stop(proc)
            raise
    if returncode != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        raise InfraError(f"{what} failed (exit {returncode}): {tail[0]} — full log: {log_path}")


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the step's process group, which mmdebstrap answers by unmounting what it
    mounted in the root; SIGKILL after STOP_GRACE_SECONDS. Signals that arrive meanwhile wait
    (a second Ctrl-C must not cut the cleanup short), then take their course."""
    deferred = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, deferred)
    try:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(proc, signal.SIGKILL)  # the leader gone, its apt or dpkg may not be
        proc.wait()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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


def entry_problem(directory: Path, digest: str) -> str | None:
    """Why the cache entry `directory` is not a usable image of `digest` ("missing" when there
    is none), or None. A damaged entry (a truncated image.json, a lost rootfs) is a reason to
    rebuild, never a traceback."""
    path = directory / "rootfs.ext4"
    meta = directory / "image.json"
    if not directory.exists():
        return "missing"
    if not path.is_file():
        return "has no rootfs.ext4"
    try:
        recorded = json.loads(meta.read_text())
    except (OSError, ValueError) as exc:
        return f"has an unreadable image.json ({exc})"
    if not isinstance(recorded, dict):
        return "has an image.json that is not a JSON object"
    return _cache_problem(recorded, digest, path)


def sweep_stale_builds(images: Path, log: Log, skip: Path | None = None) -> None:
    """Remove the `.build-*` directories of builds that were killed (their mounts first); one
    whose entry is locked belongs to a live build and is left alone."""
    for staging in sorted(images.glob(".build-*")):
        if staging == skip:
            continue
        with lock.unless_locked(lock.entry_of_staging(staging)) as free:
            if free and staging.exists():
                log(f"image: removing {staging}, left by an interrupted build")
                mounts.remove_tree(staging, log)


def _discard(staging: Path, log: Log) -> None:
    """Remove a build directory on the way out of a failed or interrupted build, without
    hiding why the build ended (a directory that cannot be removed is only logged)."""
    try:
        mounts.remove_tree(staging, log)
    except (InfraError, OSError) as exc:
        log(f"warning: could not remove {staging}: {exc}")


def build(recipe: ImageRecipe, cache: Path, log: Log, force: bool = False) -> Image:
    """The image of `recipe`, from the cache or built. Under the entry's lock: a second lab
    asking for the same image waits for the first one's build, then uses it."""
    digest = recipe.digest()
    images = cache / "images"
    directory = images / digest[:16]
    path = directory / "rootfs.ext4"
    images.mkdir(parents=True, exist_ok=True)
    with lock.locked(directory, log, f"image {digest[:16]}") as lock_fd:
        problem = entry_problem(directory, digest)
        if problem is None and not force:
            log(f"image: {digest[:16]} (cached, nothing rebuilt)")
            return Image(path, digest)
        if problem not in (None, "missing"):
            log(f"warning: cached image {directory} {problem}; rebuilding")
        staging = lock.staging_path(directory)
        sweep_stale_builds(images, log, skip=staging)
        if os.path.lexists(staging):  # this entry's own leftover: its lock is ours now
            log(f"image: removing {staging}, left by an interrupted build")
            mounts.remove_tree(staging, log)
        staging.mkdir()
        try:
            _build_into(staging, recipe, digest, lock_fd, log)
            lock.install(staging, directory)
        finally:
            if os.path.lexists(staging):
                _discard(staging, log)
    return Image(path, digest)


def _build_into(staging: Path, recipe: ImageRecipe, digest: str, lock_fd: int, log: Log) -> None:
    log(f"image: building {digest[:16]} with mmdebstrap ({recipe.codename}); this takes a few minutes")
    started = time.monotonic()
    root = staging / "root"
    build_log = staging / "build.log"
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
        # mmdebstrap holds the entry's lock too: if the lab is killed outright, the next lab must
        # not clean up (or build in) this directory while an orphaned mmdebstrap still writes it.
        keep_fds=(lock_fd,),
    )
    _install_files(root, recipe)
    path = staging / "rootfs.ext4"
    _run_logged(
        ["mkfs.ext4", "-q", "-F", "-L", "labroot", "-d", str(root), str(path), str(_image_size_bytes(root) // 1024) + "k"],
        build_log,
        "mkfs.ext4",
    )
    mounts.remove_tree(root, log)  # the entry keeps the image, not the tree it was made from
    path.chmod(0o600)  # it holds the guest's SSH host private key: readable by its owner only
    stat = path.stat()
    write_json_atomic(staging / "image.json", {
        "digest": digest, "codename": recipe.codename, "packages": list(recipe.packages),
        "sources": [s.one_line() for s in recipe.sources], "rootfs_sha256": sha256_file(path),
        "rootfs_size": stat.st_size, "rootfs_mtime_ns": stat.st_mtime_ns,
        "build_seconds": round(time.monotonic() - started, 1)})
    log(f"image: built in {time.monotonic() - started:.0f} s")
