"""lab.transport against an in-process SSH server (paramiko) on 127.0.0.1: no VM, no network.

The server runs commands with bash in a temporary directory and serves SFTP from it; remote
absolute paths are mapped into that directory.
"""
from __future__ import annotations

import io
import os
import shlex
import signal
import socket
import stat
import subprocess
import tarfile
import threading
import time
from pathlib import Path
from typing import Iterator

import paramiko
import pytest

from lab.guest import keys
from lab.vm import machine
from lab.core.errors import InfraError
from lab.target.base import CommandResult, CommandTimedOut, ConnectionLost, quote_command
from lab.target.ssh import SshTarget


def _errno(exc: OSError) -> int:
    return paramiko.SFTPServer.convert_errno(exc.errno)


class _Handle(paramiko.SFTPHandle):
    def stat(self):  # type: ignore[override]
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as exc:
            return _errno(exc)


class _LocalSFTP(paramiko.SFTPServerInterface):
    def __init__(self, server: object, *args: object, root: Path, **kwargs: object) -> None:
        super().__init__(server, *args, **kwargs)
        self.root = root

    def _path(self, path: str) -> str:
        return os.path.join(str(self.root), path.lstrip("/"))

    def stat(self, path: str):  # type: ignore[override]
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(self._path(path)))
        except OSError as exc:
            return _errno(exc)

    lstat = stat

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes):  # type: ignore[override]
        try:
            fd = os.open(self._path(path), flags, 0o644)
        except OSError as exc:
            return _errno(exc)
        mode = "r+b" if flags & os.O_RDWR else ("wb" if flags & os.O_WRONLY else "rb")
        handle = _Handle(flags)
        handle.readfile = handle.writefile = os.fdopen(fd, mode)
        return handle

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes):  # type: ignore[override]
        try:
            os.mkdir(self._path(path))
        except OSError as exc:
            return _errno(exc)
        return paramiko.SFTP_OK

    def chattr(self, path: str, attr: paramiko.SFTPAttributes):  # type: ignore[override]
        try:
            if attr.st_mode is not None:
                os.chmod(self._path(path), stat.S_IMODE(attr.st_mode))
            if attr.st_mtime is not None:
                os.utime(self._path(path), (attr.st_atime, attr.st_mtime))
        except OSError as exc:
            return _errno(exc)
        return paramiko.SFTP_OK


class _Server(paramiko.ServerInterface):
    def __init__(self, owner: "FakeSshd") -> None:
        self.owner = owner

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if username == "root" and key.get_base64() == self.owner.authorized.get_base64():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=self.owner.execute, args=(channel, command.decode()), daemon=True).start()
        return True


class FakeSshd:
    """A tiny sshd: public-key auth for root, exec through bash, SFTP, all in threads."""

    def __init__(self, root: Path, host_key: paramiko.PKey, authorized: paramiko.PKey) -> None:
        self.root = root
        self.host_key = host_key
        self.authorized = authorized
        self.commands: list[str] = []
        self.transports: list[paramiko.Transport] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.host_key)
        transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _LocalSFTP, root=self.root)
        self.transports.append(transport)
        try:
            transport.start_server(server=_Server(self))
        except (paramiko.SSHException, EOFError, OSError):
            transport.close()  # e.g. the lab's banner check, which only reads "SSH-"

    def execute(self, channel: paramiko.Channel, command: str) -> None:
        self.commands.append(command)
        proc = subprocess.Popen(["bash", "-c", command.replace("/root/lab", str(self.root / "root/lab"))],
                                cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stderr is not None
        err_chunks: list[bytes] = []
        err_reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
        err_reader.start()
        try:
            while True:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                channel.sendall(chunk)
            err_reader.join()
            channel.sendall_stderr(b"".join(err_chunks))
            rc = proc.wait()
            channel.send_exit_status(rc if rc >= 0 else 128 - rc)  # killed by a signal: 128+N, as sshd does
            channel.close()
        except (OSError, EOFError, paramiko.SSHException):
            self._kill(proc)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()

    def drop_connections(self) -> None:
        for transport in self.transports:
            transport.close()

    def stop(self) -> None:
        self.sock.close()
        self.drop_connections()
        for proc in self.procs:
            self._kill(proc)


@pytest.fixture
def lab_keys(tmp_path: Path) -> keys.LabKeys:
    return keys.ensure_keys(tmp_path / "cache")


@pytest.fixture
def sshd(tmp_path: Path, lab_keys: keys.LabKeys) -> Iterator[FakeSshd]:
    root = tmp_path / "guest"
    (root / "root" / "lab" / "out").mkdir(parents=True)  # where the suites' reports are fetched from
    server = FakeSshd(root, paramiko.Ed25519Key.from_private_key_file(str(lab_keys.host_private)),
                      paramiko.Ed25519Key.from_private_key_file(str(lab_keys.client_private)))
    yield server
    server.stop()


@pytest.fixture
def target(sshd: FakeSshd, lab_keys: keys.LabKeys) -> Iterator[SshTarget]:
    with SshTarget.connect("127.0.0.1", sshd.port, "root", lab_keys.client_private, lab_keys.host_public, 10) as t:
        yield t


# --- quote_command ---------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["rm", "-rf", "/root/lab"],
    ["printf", "%s", "a'b; touch pwned"],
    ["echo", "$(reboot)", "`id`", "a b", "", "x\ny", "--junitxml=/root/lab/out/it's.xml"],
])
def test_quote_command_round_trips(argv: list[str]) -> None:
    assert shlex.split(quote_command(argv)) == argv


# --- a session -------------------------------------------------------------------------------------


def test_run_returns_exit_status_and_both_streams(target: SshTarget) -> None:
    result = target.run("echo hello; echo oops >&2; exit 3", timeout=10)
    assert result == CommandResult(3, "hello\n", "oops\n")
    assert target.description.startswith("root@127.0.0.1:")


def test_quoted_words_are_not_interpreted_by_the_remote_shell(target: SshTarget, sshd: FakeSshd) -> None:
    hostile = "a'b; touch pwned; $(touch pwned2)"
    result = target.run(quote_command(["printf", "%s", hostile]), timeout=10)
    assert result.out == hostile and result.rc == 0
    assert not list(sshd.root.rglob("pwned*"))


def test_run_streams_into_the_sink(target: SshTarget, tmp_path: Path) -> None:
    sink = tmp_path / "suite.log"
    sink.write_text("earlier\n")
    result = target.run("for i in 1 2 3; do echo line $i; sleep 0.1; done", timeout=10, stdout_sink=sink)
    assert result.out == "line 1\nline 2\nline 3\n"
    assert sink.read_text() == "earlier\nline 1\nline 2\nline 3\n"


def test_large_output_does_not_block(target: SshTarget) -> None:
    result = target.run("head -c 3000000 /dev/zero | tr '\\0' x; echo done >&2", timeout=30)
    assert len(result.out) == 3000000 and set(result.out) == {"x"}
    assert result.err == "done\n"


def test_a_command_that_runs_too_long_times_out_with_partial_output(target: SshTarget, tmp_path: Path) -> None:
    sink = tmp_path / "suite.log"
    started = time.monotonic()
    with pytest.raises(CommandTimedOut) as caught:
        target.run("echo started; sleep 30", timeout=1.5, stdout_sink=sink)
    assert 1.4 <= time.monotonic() - started < 10
    assert caught.value.partial_out == "started\n"
    assert sink.read_text() == "started\n"
    # The session is still usable afterwards: the guest is still there.
    assert target.run("echo again", timeout=10).out == "again\n"


class Deadline:
    """A stdout sink that brings the command's deadline forward, as the series runner's does."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        pass

    def deadline(self) -> float | None:
        return self.at


def test_a_sink_deadline_earlier_than_the_timeout_ends_the_command(target: SshTarget) -> None:
    sink = Deadline(1.5)
    started = time.monotonic()
    with pytest.raises(CommandTimedOut):
        target.run("echo started; sleep 30", timeout=60, stdout_sink=sink)
    assert 1.4 <= time.monotonic() - started < 10
    assert sink.data == b"started\n"


def test_a_dropped_connection_is_connection_lost(target: SshTarget, sshd: FakeSshd) -> None:
    threading.Timer(0.5, sshd.drop_connections).start()
    started = time.monotonic()
    with pytest.raises(ConnectionLost):
        target.run("sleep 30", timeout=20)
    assert time.monotonic() - started < 15
    with pytest.raises(ConnectionLost):
        target.run("true", timeout=5)


def test_run_after_close_is_connection_lost(sshd: FakeSshd, lab_keys: keys.LabKeys) -> None:
    target = SshTarget.connect("127.0.0.1", sshd.port, "root", lab_keys.client_private, lab_keys.host_public, 10)
    target.close()
    with pytest.raises(ConnectionLost, match="closed"):
        target.run("true", timeout=5)


# --- host key pinning and authentication -------------------------------------------------------------


def test_a_guest_with_another_host_key_is_refused(sshd: FakeSshd, lab_keys: keys.LabKeys, tmp_path: Path) -> None:
    other = keys.ensure_keys(tmp_path / "other-cache")
    with pytest.raises(InfraError, match="not the pinned one"):
        SshTarget.connect("127.0.0.1", sshd.port, "root", lab_keys.client_private, other.host_public, 10)
    assert sshd.commands == []


def test_without_a_pinned_key_the_guest_is_refused_not_trusted(sshd: FakeSshd, lab_keys: keys.LabKeys) -> None:
    with pytest.raises(InfraError, match="unknown host key"):
        SshTarget.connect("127.0.0.1", sshd.port, "root", lab_keys.client_private, None, 10)


def test_a_guest_that_refuses_the_client_key(sshd: FakeSshd, lab_keys: keys.LabKeys, tmp_path: Path) -> None:
    other = keys.ensure_keys(tmp_path / "other-cache")
    with pytest.raises(InfraError, match="refused the lab's client key"):
        SshTarget.connect("127.0.0.1", sshd.port, "root", other.client_private, lab_keys.host_public, 10)


def test_nothing_listening_is_connection_lost_after_the_timeout(lab_keys: keys.LabKeys) -> None:
    port = machine.free_port()
    started = time.monotonic()
    with pytest.raises(ConnectionLost, match=f"127.0.0.1:{port}"):
        SshTarget.connect("127.0.0.1", port, "root", lab_keys.client_private, lab_keys.host_public, 1.0)
    assert 0.9 <= time.monotonic() - started < 6


def test_a_port_that_accepts_but_never_speaks_ssh(lab_keys: keys.LabKeys) -> None:
    # QEMU's forwarder accepts connections before sshd runs in the guest.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        with pytest.raises(ConnectionLost, match="no SSH banner"):
            SshTarget.connect("127.0.0.1", port, "root", lab_keys.client_private, lab_keys.host_public, 2.5)


# --- SFTP ---------------------------------------------------------------------------------------------


def test_put_tree_skips_caches_and_dotfiles_and_keeps_modes_and_mtimes(target: SshTarget, sshd: FakeSshd,
                                                                       tmp_path: Path) -> None:
    local = tmp_path / "guest-tests"
    (local / "suites").mkdir(parents=True)
    (local / "suites" / "test_maps.py").write_text("def test(): pass\n")
    # An mtime of the past, kept to the second: python and pytest check a .pyc against it.
    os.utime(local / "suites" / "test_maps.py", (1_600_000_000.7, 1_600_000_123.9))
    (local / "run.sh").write_text("#!/bin/sh\n")
    (local / "run.sh").chmod(0o755)
    (local / "suites" / "__pycache__").mkdir()
    (local / "suites" / "__pycache__" / "test_maps.cpython-311.pyc").write_bytes(b"\0")
    (local / ".benchmarks").mkdir()
    (local / ".gitignore").write_text("*.pyc\n")
    target.run("mkdir -p /root/lab/guest-tests", timeout=10)
    assert target.put_tree(local, "/root/lab/guest-tests", 10) == 2
    remote = sshd.root / "root" / "lab" / "guest-tests"
    assert sorted(str(p.relative_to(remote)) for p in remote.rglob("*")) == ["run.sh", "suites", "suites/test_maps.py"]
    assert stat.S_IMODE((remote / "run.sh").stat().st_mode) == 0o755
    assert (remote / "suites" / "test_maps.py").read_text() == "def test(): pass\n"
    assert (remote / "suites" / "test_maps.py").stat().st_mtime == 1_600_000_123


def test_put_tree_is_one_archive_and_one_tar_into_a_directory_it_makes(target: SshTarget, sshd: FakeSshd,
                                                                       tmp_path: Path) -> None:
    local = tmp_path / "guest-tests"
    for number in range(20):
        (local / f"d{number % 3}").mkdir(parents=True, exist_ok=True)
        (local / f"d{number % 3}" / f"test_{number}.py").write_text(f"N = {number}\n")
    assert target.put_tree(local, "/root/lab/new/guest-tests", 10) == 20
    remote = sshd.root / "root" / "lab" / "new" / "guest-tests"
    assert (remote / "d2" / "test_17.py").read_text() == "N = 17\n"
    assert len(list(remote.rglob("*.py"))) == 20
    assert [c for c in sshd.commands if "tar -x" in c] == sshd.commands and len(sshd.commands) == 1
    assert not list((sshd.root / "root" / "lab").glob("**/*.lab-upload.tar"))  # the archive is removed


def test_put_archive_unpacks_and_a_damaged_archive_is_refused(target: SshTarget, sshd: FakeSshd,
                                                              tmp_path: Path) -> None:
    archive = tmp_path / "pyc.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("suites/__pycache__/test_maps.cpython-311.pyc")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"pyc"))
    assert target.put_archive(archive, "/root/lab/guest-tests", 10)
    remote = sshd.root / "root" / "lab" / "guest-tests"
    assert (remote / "suites" / "__pycache__" / "test_maps.cpython-311.pyc").read_bytes() == b"pyc"
    archive.write_bytes(b"not a tar archive" * 64)
    assert not target.put_archive(archive, "/root/lab/guest-tests", 10)
    assert not list((sshd.root / "root" / "lab").glob("*.lab-upload.tar"))


def test_a_listening_guest_is_connected_without_a_banner_probe(sshd: FakeSshd, lab_keys: keys.LabKeys) -> None:
    """A restored guest's sshd is up: the probe would cost it a whole sshd start of its own."""
    with SshTarget.connect("127.0.0.1", sshd.port, "root", lab_keys.client_private, lab_keys.host_public, 10,
                           listening=True):
        assert len(sshd.transports) == 1
    with SshTarget.connect("127.0.0.1", sshd.port, "root", lab_keys.client_private, lab_keys.host_public, 10):
        assert len(sshd.transports) == 3  # the probe's connection, then the session's


def test_put_and_get(target: SshTarget, sshd: FakeSshd, tmp_path: Path) -> None:
    local = tmp_path / "report.xml"
    local.write_text("<testsuite/>\n")
    target.run("mkdir -p /root/lab/out", timeout=10)
    target.put(local, "/root/lab/out/copy.xml", 10)
    assert (sshd.root / "root" / "lab" / "out" / "copy.xml").read_text() == "<testsuite/>\n"
    back = tmp_path / "back.xml"
    assert target.get("/root/lab/out/copy.xml", back, 10) is True
    assert back.read_text() == "<testsuite/>\n"


def test_get_of_a_missing_file_is_false_and_leaves_nothing(target: SshTarget, tmp_path: Path) -> None:
    local = tmp_path / "junit-maps.xml"
    assert target.get("/root/lab/out/maps.xml", local, 10) is False
    assert not local.exists()
