"""The lab's SSH keys: a client key and a guest host key, made once per lab cache.

The host key is baked into the image and pinned on the client side, so a guest that
presents any other key is refused (no trust-on-first-use).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..core import lock
from ..core.log import Log, stderr


@dataclass(frozen=True)
class LabKeys:
    client_private: Path
    client_public: str  # one authorized_keys line
    host_private: Path
    host_public: str  # "ssh-ed25519 AAAA..."


def _write_keypair(private_path: Path, comment: str) -> str:
    """A new pair, each half written under a temporary name and renamed over the old one."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = f"{public.decode()} {comment}"
    public_path = private_path.with_suffix(".pub")
    private_tmp = private_path.with_name(f".{private_path.name}.{os.getpid()}.tmp")
    public_tmp = public_path.with_name(f".{public_path.name}.{os.getpid()}.tmp")
    for tmp in (private_tmp, public_tmp):
        tmp.unlink(missing_ok=True)
    # Created 0600 from the start: the private key is never world-readable, not even briefly.
    fd = os.open(private_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_tmp.write_text(line + "\n")
    # Killed between the two renames, the halves disagree: the next run sees that and remakes the pair.
    os.replace(private_tmp, private_path)
    os.replace(public_tmp, public_path)
    return line


def pair_problem(private: Path, public: Path) -> str | None:
    """Why a key pair on disk cannot be used ("missing" when neither half is there), or None."""
    if not private.is_file() and not public.is_file():
        return "missing"
    if not private.is_file():
        return f"has no private half {private.name}"
    if not public.is_file():
        return f"has no public half {public.name}"
    try:
        key = serialization.load_ssh_private_key(private.read_bytes(), password=None)
        derived = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        recorded = public.read_text().split()
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return f"has an unreadable private key {private.name} ({exc})"
    if not isinstance(key, Ed25519PrivateKey):
        return f"has a private key {private.name} that is not ed25519"
    if recorded[:2] != derived.decode().split():
        return f"has a public half {public.name} that does not match its private key"
    return None


def ensure_keys(cache: Path, log: Log = stderr) -> LabKeys:
    """The cache's keys, made on first use. Under the keys' lock: two first runs at once must not
    each make a pair and bake one into the image while the other logs in with its own."""
    directory = cache / "keys"
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    pairs = {}
    with lock.locked(directory, log, "the lab's SSH keys"):
        for name in ("client_ed25519", "host_ed25519"):
            private = directory / f"{name}.key"
            public = private.with_suffix(".pub")
            problem = pair_problem(private, public)
            if problem is None:
                pairs[name] = public.read_text().strip()
                continue
            if problem != "missing":
                log(f"warning: the SSH key pair {private} {problem}; made a new pair (the guest image is rebuilt)")
            pairs[name] = _write_keypair(private, f"bpf-kernel-lab-{name}")
    host_public = " ".join(pairs["host_ed25519"].split()[:2])
    return LabKeys(directory / "client_ed25519.key", pairs["client_ed25519"], directory / "host_ed25519.key", host_public)
