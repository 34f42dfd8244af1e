"""The lab's SSH keys: a client key and a guest host key, made once per lab cache.

The host key is baked into the image and pinned on the client side, so a guest that
presents any other key is refused (no trust-on-first-use).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class LabKeys:
    client_private: Path
    client_public: str  # one authorized_keys line
    host_private: Path
    host_public: str  # "ssh-ed25519 AAAA..."


def _write_keypair(private_path: Path, comment: str) -> str:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    # Created 0600 from the start: the private key is never world-readable, not even briefly.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    line = f"{public.decode()} {comment}"
    private_path.with_suffix(".pub").write_text(line + "\n")
    return line


def ensure_keys(cache: Path) -> LabKeys:
    directory = cache / "keys"
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    pairs = {}
    for name in ("client_ed25519", "host_ed25519"):
        private = directory / f"{name}.key"
        public = private.with_suffix(".pub")
        if private.is_file() and public.is_file():
            pairs[name] = public.read_text().strip()
        else:
            private.unlink(missing_ok=True)
            pairs[name] = _write_keypair(private, f"bpf-kernel-lab-{name}")
    host_public = " ".join(pairs["host_ed25519"].split()[:2])
    return LabKeys(directory / "client_ed25519.key", pairs["client_ed25519"], directory / "host_ed25519.key", host_public)
