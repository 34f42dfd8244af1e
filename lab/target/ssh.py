"""SSH to the guest with paramiko: one connection per VM, commands, SFTP up and down.

The guest's host key is pinned: the lab's own key is the only one accepted, and a guest
that presents another is refused (paramiko's RejectPolicy), never added.
"""
from __future__ import annotations

import base64
import io
import logging
import posixpath
import select
import shlex
import socket
import stat
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import paramiko

from ..core.errors import InfraError
from ..core.files import is_cache_or_hidden, local_file, write_all
from .base import CommandResult, CommandTimedOut, ConnectionLost, Sink, TransferRefused, as_sink

# paramiko logs a traceback for every refused early connection attempt; the lab reports
# connection problems itself, as one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False


MiB = 1 << 20
# What a guest may send is bounded (module constants, so tests can lower them): a command's
# stdout (kept in memory and in its sink, each), its stderr, and one downloaded file.
STDOUT_CAP = 64 * MiB
STDERR_CAP = 4 * MiB
DOWNLOAD_CAP = 64 * MiB
# Past a transfer's deadline its SFTP channel is closed; a send stuck under the channel (a
# frozen guest stops reading TCP) only ends with the whole connection, this much later.
ABORT_GRACE = 2.0
CHUNK = 32768


def _size(count: int) -> str:
    return f"{count // MiB} MiB" if count % MiB == 0 else f"{count} bytes"


class _Capped:
    """One output stream of a command, kept up to `cap` bytes (and copied to the sink, if any).
    The rest is still read, so the remote side never blocks, and dropped; the sink says where."""

    def __init__(self, name: str, cap: int, sink: Sink | None = None) -> None:
        self.name = name
        self.cap = cap
        self.data = bytearray()
        self.dropped = 0
        self.sink = as_sink(sink)

    def add(self, chunk: bytes) -> None:
        kept = chunk[:max(0, self.cap - len(self.data))]
        if kept:
            self.data += kept
            self._write(kept)
        if len(kept) < len(chunk):
            if not self.dropped:
                self._write(f"\n[lab: {self.name} truncated: more than {_size(self.cap)}; the rest was read and "
                            f"dropped]\n".encode())
            self.dropped += len(chunk) - len(kept)

    def _write(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink.write(data)

    def text(self) -> str:
        return self.data.decode(errors="replace")

    @property
    def note(self) -> str:
        return f"{self.name} past {_size(self.cap)} ({self.dropped} bytes dropped)" if self.dropped else ""

    def deadline(self, fixed: float) -> float:
        """The command's deadline: its own, or the sink's if that is earlier."""
        moved = self.sink.deadline() if self.sink is not None else None
        return fixed if moved is None else min(fixed, moved)

    def close(self) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.close()


def _banner_ready(host: str, port: int) -> bool:
    """True once sshd itself answers; QEMU's forwarder accepts and resets before that."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.settimeout(2)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _send(source: BinaryIO, local: Path, sftp: paramiko.SFTPClient, remote: str) -> None:
    """`source` (read from `local`, which names a failure to read it) written to `remote`, pipelined."""
    with sftp.open(remote, "wb") as dest:
        dest.set_pipelined(True)
        while True:
            with local_file(local, "reading"):
                chunk = source.read(CHUNK)
            if not chunk:
                break
            dest.write(chunk)


def _make_dirs(sftp: paramiko.SFTPClient, path: str) -> None:
    """`mkdir -p` over SFTP (a few round trips, where a command would cost the target a process)."""
    try:
        sftp.stat(path)
    except FileNotFoundError:
        _make_dirs(sftp, posixpath.dirname(path))
        sftp.mkdir(path)


def _tree_archive(local_dir: Path) -> tuple[bytes, int]:
    """A tar of the tree's directories and files (symlinks followed, caches and dot-files left out),
    owned by root, with their modes and mtimes; and how many files it holds."""
    with local_file(local_dir, "reading"):
        paths = sorted(local_dir.rglob("*"))
    buffer = io.BytesIO()
    count = 0
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in paths:
            relative = path.relative_to(local_dir)
            # Caches and dot-directories (.mypy_cache, .pytest_cache) are never shipped, nor what is in them.
            if is_cache_or_hidden(relative.parts):
                continue
            with local_file(path, "reading"):
                status = path.stat()
                info = tarfile.TarInfo(relative.as_posix())
                info.mode, info.mtime = stat.S_IMODE(status.st_mode), int(status.st_mtime)
                info.uname = info.gname = "root"
                if stat.S_ISDIR(status.st_mode):
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                    continue
                data = path.read_bytes()
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            count += 1
    return buffer.getvalue(), count


class SshTarget:
    """The Target contract: run, put, put_tree, put_archive, get, close. What the guest sends is capped
    (STDOUT_CAP, STDERR_CAP, DOWNLOAD_CAP); the lab's own files failing is InfraError."""

    def __init__(self, client: paramiko.SSHClient, description: str) -> None:
        self._client = client
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_channel: paramiko.Channel | None = None  # the guard of a transfer closes it
        self.description = description

    @classmethod
    def connect(cls, host: str, port: int, user: str, key_file: Path, host_public: str | None,
                timeout: float, listening: bool = False) -> "SshTarget":
        """Retry until the deadline: sshd may still be starting when the port opens. `listening`:
        sshd is known to be up (a restored guest): no banner probe, which costs the guest a whole
        sshd start of its own, and quick retries (its network takes a moment after the resume)."""
        key = paramiko.Ed25519Key.from_private_key_file(str(key_file))
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not listening and not _banner_ready(host, port):
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
            time.sleep(0.05 if listening else 0.2)
        raise ConnectionLost(f"no SSH session with {host}:{port} within {timeout:.0f} s: {last_error}")

    def run(self, command: str, timeout: float, stdout_sink: Sink | None = None) -> CommandResult:
        """Run a shell command; its output is read as it comes, so nothing blocks on a full pipe."""
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionLost("the SSH connection is closed")
        out = _Capped("stdout", STDOUT_CAP, stdout_sink)
        err = _Capped("stderr", STDERR_CAP)
        try:
            rc = self._run(transport, command, timeout, out, err)
        finally:
            out.close()
        truncated = ", ".join(note for note in (out.note, err.note) if note)
        return CommandResult(rc, out.text(), err.text(), truncated)

    def _run(self, transport: paramiko.Transport, command: str, timeout: float, out: _Capped, err: _Capped) -> int:
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
        try:
            while True:
                while channel.recv_ready():
                    out.add(channel.recv(65536))  # a failing sink raises InfraError, not OSError
                while channel.recv_stderr_ready():
                    err.add(channel.recv_stderr(65536))
                if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                if not transport.is_active():
                    raise ConnectionLost(f"the SSH connection broke during {command!r}")
                if time.monotonic() >= out.deadline(deadline):
                    raise CommandTimedOut(command, timeout, out.text())
                select.select([channel], [], [], 0.2)
            rc = channel.recv_exit_status()
        except (OSError, EOFError) as exc:
            raise ConnectionLost(f"the SSH connection broke during {command!r}: {exc}") from exc
        finally:
            channel.close()
        if rc == -1:
            raise ConnectionLost(f"{command!r} ended without an exit status (connection lost)")
        return rc

    # --- SFTP: every transfer as a whole is bounded by its timeout -------------------------------

    def _sftp_client(self, timeout: float) -> paramiko.SFTPClient:
        if self._sftp is None:
            transport = self._client.get_transport()
            if transport is None or not transport.is_active():
                raise ConnectionLost("the SSH connection is closed")
            # Opened by hand (not open_sftp) so the guard has the channel to close while the
            # subsystem request and the version exchange wait for a guest that may never answer.
            channel = transport.open_session(timeout=timeout)
            self._sftp_channel = channel
            channel.invoke_subsystem("sftp")
            self._sftp = paramiko.SFTPClient(channel)
        return self._sftp

    def _drop_sftp(self) -> None:
        sftp, channel, self._sftp, self._sftp_channel = self._sftp, self._sftp_channel, None, None
        with suppress(Exception):  # closing a broken session must never mask why it broke
            if sftp is not None:
                sftp.close()
            elif channel is not None:
                channel.close()

    def _connection_broke(self) -> bool:
        transport = self._client.get_transport()
        channel = self._sftp_channel
        return transport is None or not transport.is_active() or channel is None or channel.closed

    @contextmanager
    def _transfer(self, what: str, timeout: float,
                  refused: type[Exception] = InfraError) -> Iterator[paramiko.SFTPClient]:
        """An SFTP session for one whole transfer. Past `timeout` its channel is closed (then, if
        that does not end it, the connection): CommandTimedOut. A broken connection is
        ConnectionLost; an error the live target answered with (its disk full) is `refused`."""
        expired = threading.Event()

        def abort() -> None:
            expired.set()
            channel = self._sftp_channel
            if channel is not None:
                channel.close()

        def give_up() -> None:
            transport = self._client.get_transport()
            if transport is not None:
                transport.close()

        guards = [threading.Timer(timeout, abort), threading.Timer(timeout + ABORT_GRACE, give_up)]
        for guard in guards:
            guard.daemon = True
            guard.start()
        try:
            yield self._sftp_client(timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            broke = self._connection_broke()
            self._drop_sftp()
            if expired.is_set():
                raise CommandTimedOut(what, timeout, "") from exc
            if broke or not isinstance(exc, OSError):
                raise ConnectionLost(f"{what} failed: {exc}") from exc
            raise refused(f"the target refused the {what}: {exc}") from exc
        finally:
            for guard in guards:
                guard.cancel()
            if expired.is_set():
                self._drop_sftp()

    @staticmethod
    def _upload(sftp: paramiko.SFTPClient, local: Path, remote: str) -> None:
        with local_file(local, "reading"):
            source = local.open("rb")
            status = local.stat()
        with source:
            _send(source, local, sftp, remote)
        sftp.chmod(remote, stat.S_IMODE(status.st_mode))
        # The source's mtime too: python and pytest accept a .pyc only for the mtime it was compiled
        # from (run/bytecode.py ships the guest's bytecode of the last run).
        sftp.utime(remote, (int(status.st_atime), int(status.st_mtime)))

    def put(self, local: Path, remote: str, timeout: float) -> None:
        with self._transfer(f"upload of {local}", timeout) as sftp:
            self._upload(sftp, local, remote)

    def put_tree(self, local_dir: Path, remote_dir: str, timeout: float) -> int:
        """Upload a directory tree (no caches or dot-files) into `remote_dir` (made if missing), all of
        it within `timeout`; returns the number of files sent. One tar archive and one `tar -x` on the
        target: file by file, SFTP's five round trips each cost a TCG guest about 0.3 s more for
        the suites' 61 files. Modes and mtimes are kept (python checks a .pyc against its source's)."""
        archive, count = _tree_archive(local_dir)
        refusal = self._unpack(io.BytesIO(archive), local_dir, remote_dir, timeout)
        if refusal:
            raise InfraError(f"the target refused the upload of {local_dir}: {refusal}")
        return count

    def put_archive(self, archive: Path, remote_dir: str, timeout: float) -> bool:
        """Upload a tar archive and unpack it into `remote_dir` (made if missing), within `timeout`;
        False when the target's tar refused it."""
        with local_file(archive, "reading"):
            source = archive.open("rb")
        with source:
            return not self._unpack(source, archive, remote_dir, timeout)

    def _unpack(self, source: BinaryIO, local: Path, remote_dir: str, timeout: float) -> str:
        """`source` (a tar of `local`) sent beside `remote_dir` and unpacked into it; what tar said if it failed."""
        deadline = time.monotonic() + timeout
        remote_archive = f"{remote_dir.rstrip('/')}.lab-upload.tar"
        with self._transfer(f"upload of {local}", timeout) as sftp:
            _make_dirs(sftp, posixpath.dirname(remote_archive))
            _send(source, local, sftp, remote_archive)
        place, packed = shlex.quote(remote_dir), shlex.quote(remote_archive)
        done = self.run(f"mkdir -p {place} && tar -x -f {packed} -C {place}; status=$?; rm -f {packed}; exit $status",
                        max(0.1, deadline - time.monotonic()))
        return "" if done.rc == 0 else f"tar said {done.err.strip()[-200:]!r} (exit status {done.rc})"

    def get(self, remote: str, local: Path, timeout: float) -> bool:
        """Download one file within `timeout`; False if the target does not have it. A file that
        is not a regular one, or is larger than DOWNLOAD_CAP, is refused (TransferRefused)."""
        try:
            with self._transfer(f"download of {remote}", timeout, refused=TransferRefused) as sftp:
                try:
                    source = sftp.open(remote, "rb")
                except FileNotFoundError:
                    return False
                with source:
                    _copy_capped(source, remote, local)
            return True
        except BaseException:
            with suppress(OSError):
                local.unlink(missing_ok=True)  # half a report would read as a different result
            raise

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        self._client.close()

    def __enter__(self) -> "SshTarget":
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _copy_capped(source: paramiko.SFTPFile, remote: str, local: Path) -> None:
    """Copy an open remote file to `local`, refusing what no test report can be: a device (a
    link to /dev/zero never ends), or more than DOWNLOAD_CAP bytes (checked as it comes too:
    the file may grow)."""
    attributes = source.stat()
    if attributes.st_mode is not None and not stat.S_ISREG(attributes.st_mode):
        raise TransferRefused(f"{remote} on the target is not a regular file; not downloaded")
    if (attributes.st_size or 0) > DOWNLOAD_CAP:
        raise TransferRefused(f"{remote} on the target has {attributes.st_size} bytes, more than the lab takes "
                              f"({_size(DOWNLOAD_CAP)}); not downloaded")
    with local_file(local, "writing"):
        dest = local.open("wb", buffering=0)  # unbuffered: every failing write is seen where it happens
    with dest:
        received = 0
        while chunk := source.read(CHUNK):
            received += len(chunk)
            if received > DOWNLOAD_CAP:
                raise TransferRefused(f"{remote} on the target grew past {_size(DOWNLOAD_CAP)} while downloaded; "
                                      f"not downloaded")
            with local_file(local, "writing"):
                write_all(dest, chunk)
