"""SSH to the guest with paramiko: one connection per VM, commands, SFTP up and down.

The guest's host key is pinned: the lab's own key is the only one accepted, and a guest
that presents another is refused (paramiko's RejectPolicy), never added.
"""
from __future__ import annotations

import base64
import logging
import posixpath
import select
import socket
import stat
import threading
import time
from pathlib import Path
from types import TracebackType

import paramiko

from ..core.errors import InfraError
from .base import CommandResult, CommandTimedOut, ConnectionLost

# paramiko logs a traceback for every refused early connection attempt; the lab reports
# connection problems itself, as one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False


SFTP_TIMEOUT = 120.0  # seconds one SFTP request may take


def _banner_ready(host: str, port: int) -> bool:
    """True once sshd itself answers; QEMU's forwarder accepts and resets before that."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.settimeout(2)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


class SshTarget:
    """The Target contract: run, put, put_tree, get, close."""

    def __init__(self, client: paramiko.SSHClient, description: str) -> None:
        self._client = client
        self._sftp: paramiko.SFTPClient | None = None
        self.description = description

    @classmethod
    def connect(cls, host: str, port: int, user: str, key_file: Path, host_public: str | None,
                timeout: float) -> "SshTarget":
        """Retry until the deadline: sshd may still be starting when the port opens."""
        key = paramiko.Ed25519Key.from_private_key_file(str(key_file))
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not _banner_ready(host, port):
                last_error = ConnectionRefusedError("no SSH banner yet")
                time.sleep(0.2)
                continue
            client = paramiko.SSHClient()
            if host_public is not None:
                kind, blob = host_public.split()[:2]
                name = host if port == 22 else f"[{host}]:{port}"
                client.get_host_keys().add(name, kind, paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                client.connect(host, port=port, username=user, pkey=key, look_for_keys=False, allow_agent=False,
                               timeout=5, banner_timeout=10, auth_timeout=10)
                transport = client.get_transport()
                assert transport is not None
                transport.set_keepalive(5)
                return cls(client, f"{user}@{host}:{port}")
            except paramiko.BadHostKeyException as exc:
                client.close()
                raise InfraError(f"{host}:{port} presented a host key that is not the pinned one; refused") from exc
            except paramiko.AuthenticationException as exc:
                client.close()
                raise InfraError(f"{host}:{port} refused the lab's client key: {exc}") from exc
            except paramiko.SSHException as exc:
                if "not found in known_hosts" in str(exc):
                    client.close()
                    raise InfraError(f"{host}:{port} presented an unknown host key; refused") from exc
                last_error = exc
            except (OSError, EOFError) as exc:
                last_error = exc
            client.close()
            time.sleep(0.2)
        raise ConnectionLost(f"no SSH session with {host}:{port} within {timeout:.0f} s: {last_error}")

    def run(self, command: str, timeout: float, stdout_sink: Path | None = None) -> CommandResult:
        """Run a shell command; its output is read as it comes, so nothing blocks on a full pipe."""
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionLost("the SSH connection is closed")
        deadline = time.monotonic() + timeout
        # paramiko waits for the server's answer to open/exec without a bound; a frozen guest
        # never answers. Past the deadline the guard closes the transport, which ends the wait.
        guard = threading.Timer(timeout, transport.close)
        guard.daemon = True
        guard.start()
        try:
            channel = transport.open_session(timeout=timeout)
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if time.monotonic() >= deadline:
                raise CommandTimedOut(command, timeout, "") from exc
            raise ConnectionLost(f"SSH failed starting {command!r}: {exc}") from exc
        finally:
            guard.cancel()
        out, err = bytearray(), bytearray()
        sink = stdout_sink.open("ab") if stdout_sink else None
        try:
            while True:
                while channel.recv_ready():
                    chunk = channel.recv(65536)
                    out += chunk
                    if sink:
                        sink.write(chunk)
                        sink.flush()
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                if not transport.is_active():
                    raise ConnectionLost(f"the SSH connection broke during {command!r}")
                if time.monotonic() >= deadline:
                    raise CommandTimedOut(command, timeout, out.decode(errors="replace"))
                select.select([channel], [], [], 0.2)
            rc = channel.recv_exit_status()
        except (socket.error, EOFError) as exc:
            raise ConnectionLost(f"the SSH connection broke during {command!r}: {exc}") from exc
        finally:
            channel.close()
            if sink:
                sink.close()
        if rc == -1:
            raise ConnectionLost(f"{command!r} ended without an exit status (connection lost)")
        return CommandResult(rc, out.decode(errors="replace"), err.decode(errors="replace"))

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self._client.open_sftp()
                # Reads from a frozen guest would wait forever; a bound turns that into an error.
                channel = self._sftp.get_channel()
                if channel is not None:
                    channel.settimeout(SFTP_TIMEOUT)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise ConnectionLost(f"SFTP failed: {exc}") from exc
        return self._sftp

    def put(self, local: Path, remote: str) -> None:
        try:
            self._sftp_client().put(str(local), remote)
        except (paramiko.SSHException, EOFError) as exc:
            raise ConnectionLost(f"upload of {local} failed: {exc}") from exc

    def put_tree(self, local_dir: Path, remote_dir: str) -> int:
        """Upload a directory tree (no __pycache__); returns the number of files sent."""
        sftp = self._sftp_client()
        count = 0
        for path in sorted(local_dir.rglob("*")):
            relative = path.relative_to(local_dir)
            # Caches and dot-directories (.mypy_cache, .pytest_cache) are never shipped, nor what is in them.
            if any(part == "__pycache__" or part.startswith(".") for part in relative.parts):
                continue
            target = posixpath.join(remote_dir, *relative.parts)
            try:
                if path.is_dir():
                    sftp.mkdir(target)
                else:
                    sftp.put(str(path), target)
                    sftp.chmod(target, stat.S_IMODE(path.stat().st_mode))
                    count += 1
            except (paramiko.SSHException, EOFError) as exc:
                raise ConnectionLost(f"upload of {path} failed: {exc}") from exc
        return count

    def get(self, remote: str, local: Path) -> bool:
        """Download one file; False if the guest does not have it."""
        try:
            self._sftp_client().get(remote, str(local))
            return True
        except FileNotFoundError:
            local.unlink(missing_ok=True)
            return False
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionLost(f"download of {remote} failed: {exc}") from exc

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        self._client.close()

    def __enter__(self) -> "SshTarget":
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
