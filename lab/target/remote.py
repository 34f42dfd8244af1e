"""Reaching an existing machine over SSH: the `ssh://user@host[:port]` target, its host key
checked against a known_hosts file, public-key authentication only.

Nothing here is trust-on-first-use: a host whose key is not in the known_hosts file, or
whose key differs from the one recorded there, is refused with a one-line error saying how
to add it. No password or keyboard-interactive authentication is ever attempted.
"""
from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import paramiko
from paramiko.auth_strategy import AuthSource, AuthStrategy, InMemoryPrivateKey

from ..core.errors import UserError
from .base import quote_command
from .ssh import SshTarget

DEFAULT_PORT = 22
DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
# The keys OpenSSH tries when none is given (the ones paramiko can read).
DEFAULT_KEY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")


@dataclass(frozen=True)
class SshUrl:
    user: str
    host: str
    port: int

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH (and paramiko) name the host in known_hosts."""
        return self.host if self.port == DEFAULT_PORT else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"ssh://{self.user}@{host}:{self.port}"


def parse_ssh_url(text: str, local_user: str | None = None) -> SshUrl:
    """`ssh://[user@]host[:port]`; without a user, the local user, as ssh does."""
    if not text.startswith("ssh://"):
        raise UserError(f"--target {text!r}: expected ssh://user@host[:port]")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UserError(f"--target {text!r}: {exc}") from None
    if parts.password is not None:
        raise UserError(f"--target {text!r}: no password in the URL; the lab only uses SSH keys")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UserError(f"--target {text!r}: expected ssh://user@host[:port] and nothing after it")
    if not parts.hostname:
        raise UserError(f"--target {text!r}: no host")
    user = parts.username if parts.username is not None else (local_user or getpass.getuser())
    if not user:
        raise UserError(f"--target {text!r}: empty user name")
    return SshUrl(user, parts.hostname, port if port is not None else DEFAULT_PORT)


def keyscan_hint(url: SshUrl, known_hosts: Path) -> str:
    scan = ["ssh-keyscan", *(["-p", str(url.port)] if url.port != DEFAULT_PORT else []), url.host]
    return f"check its fingerprint and add it, e.g. {quote_command(scan)} >> {quote_command([str(known_hosts)])}"


def load_known_hosts(path: Path, url: SshUrl) -> paramiko.HostKeys:
    """The file's keys (hashed names included); a missing file is the user's to create."""
    if not path.is_file():
        raise UserError(f"{url.known_hosts_name}: known_hosts file {path} does not exist; {keyscan_hint(url, path)}")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read known_hosts file {path}: {exc}") from None
    known = paramiko.HostKeys()
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        # Marker lines (@cert-authority, @revoked) are skipped: paramiko checks no host
        # certificates, so a host known only through a CA is refused as unknown.
        if not line or line.startswith(("#", "@")):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
        except (paramiko.SSHException, paramiko.hostkeys.InvalidHostKey, ValueError):
            entry = None  # ssh skips a line it cannot read; so does the lab
        if entry is not None and entry.key is not None:
            for name in entry.hostnames:
                known.add(name, entry.key.get_name(), entry.key)
    return known


def fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"  # "ssh-ed25519 SHA256:..." as ssh prints it


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    """paramiko calls this only for a host with no key in the file: refuse, say how to add it."""

    def __init__(self, url: SshUrl, known_hosts: Path) -> None:
        self.url = url
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise UserError(f"{hostname} is not in {self.known_hosts} (it offered {fingerprint(key)}); "
                        f"{keyscan_hint(self.url, self.known_hosts)}")


def changed_key_message(url: SshUrl, known_hosts: Path, offered: paramiko.PKey) -> str:
    remove = quote_command(["ssh-keygen", "-R", url.known_hosts_name, "-f", str(known_hosts)])
    return (f"{url.known_hosts_name} offered {fingerprint(offered)}, which is not its key in {known_hosts}; refused "
            f"(if the machine was reinstalled: {remove}, then {keyscan_hint(url, known_hosts)})")


class _KeysOnly(AuthStrategy):
    """Public keys, one after the other; never a password or keyboard-interactive prompt."""

    def __init__(self, user: str, keys: list[paramiko.PKey]) -> None:
        super().__init__(ssh_config=paramiko.SSHConfig())
        self.user = user
        self.keys = keys

    def get_sources(self) -> Iterator[AuthSource]:
        for key in self.keys:
            yield InMemoryPrivateKey(self.user, key)


def load_private_key(path: Path) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(path)
    except FileNotFoundError:
        raise UserError(f"--key {path}: no such file") from None
    except (paramiko.PasswordRequiredException, TypeError):
        # cryptography says "password-protected" with a TypeError; no passphrase is ever asked for.
        raise UserError(f"--key {path} is passphrase-protected: load it into ssh-agent and leave out --key") from None
    except (paramiko.SSHException, OSError, ValueError) as exc:
        raise UserError(f"--key {path}: not a private key paramiko can read ({exc})") from None


def default_keys(home: Path) -> list[paramiko.PKey]:
    """ssh-agent's keys, then ~/.ssh/id_* that need no passphrase (an encrypted one is skipped)."""
    found: list[paramiko.PKey] = []
    if os.environ.get("SSH_AUTH_SOCK"):
        try:
            found.extend(paramiko.Agent().get_keys())
        except paramiko.SSHException:
            pass  # a stale agent socket: the key files may still do
    for name in DEFAULT_KEY_NAMES:
        path = home / ".ssh" / name
        if path.is_file():
            try:
                found.append(paramiko.PKey.from_path(path))
            except (paramiko.SSHException, OSError, ValueError, TypeError):
                continue
    return found


def connect(url: SshUrl, key_file: Path | None, known_hosts: Path, timeout: float) -> SshTarget:
    """One attempt (a real machine is either up or not), bounded by `timeout`."""
    known = load_known_hosts(known_hosts, url)
    keys = [load_private_key(key_file)] if key_file is not None else default_keys(Path.home())
    offered = str(key_file) if key_file is not None else "ssh-agent and ~/.ssh/id_*"
    if not keys:
        raise UserError(f"{url}: no key to log in with (none in ssh-agent or ~/.ssh/id_*); give one with --key FILE")
    client = paramiko.SSHClient()
    # Loaded into the client (not as "system" keys, which it would never write either) so
    # paramiko asks the server for the key type the file has.
    for name, by_type in known.items():
        for key in by_type.values():
            client.get_host_keys().add(name, key.get_name(), key)
    client.set_missing_host_key_policy(_RefuseUnknown(url, known_hosts))
    try:
        client.connect(url.host, port=url.port, username=url.user, timeout=timeout, banner_timeout=timeout,
                       auth_timeout=timeout, auth_strategy=_KeysOnly(url.user, keys))
        transport = client.get_transport()
        if transport is None or not transport.is_authenticated():
            raise UserError(f"{url}: the server wants more than a key (a second factor); not supported")
        transport.set_keepalive(5)
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise UserError(changed_key_message(url, known_hosts, exc.key)) from None
    except paramiko.AuthenticationException:
        client.close()
        raise UserError(f"{url}: the server refused the key(s) from {offered} (password login is never tried)") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        raise UserError(f"{url}: cannot open an SSH session within {timeout:.0f} s: {str(exc) or type(exc).__name__}") from None
    except BaseException:
        client.close()
        raise
    return SshTarget(client, f"{url.user}@{url.known_hosts_name}")
