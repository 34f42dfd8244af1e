"""lab.sshremote: the ssh:// target, known_hosts, and refusing what is not known.

The connection tests use test_lab_transport's in-process sshd (threads on 127.0.0.1, no VM).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
from pathlib import Path
from typing import Iterator

import paramiko
import pytest
from test_lab_transport import FakeSshd

from lab.guest import keys
from lab.core.errors import UserError
from lab.target.remote import SshUrl, connect, load_known_hosts, load_private_key, parse_ssh_url

# --- the URL ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("ssh://root@host", SshUrl("root", "host", 22)),
    ("ssh://root@127.0.0.1:2222", SshUrl("root", "127.0.0.1", 2222)),
    ("ssh://alice@Build-Box.example.com:22/", SshUrl("alice", "build-box.example.com", 22)),
    ("ssh://root@[::1]:2200", SshUrl("root", "::1", 2200)),
    ("ssh://host.example", SshUrl("me", "host.example", 22)),  # no user: the local one, as ssh does
])
def test_parse_ssh_url(text: str, expected: SshUrl) -> None:
    assert parse_ssh_url(text, local_user="me") == expected


@pytest.mark.parametrize("text, message", [
    ("root@host", "expected ssh://user@host"),
    ("http://root@host", "expected ssh://user@host"),
    ("ssh://root:secret@host", "no password in the URL"),
    ("ssh://root@host:99999", "out of range"),
    ("ssh://root@host:port", "Port could not be cast"),
    ("ssh://root@host/tmp", "nothing after it"),
    ("ssh://root@host?x=1", "nothing after it"),
    ("ssh://root@:22", "no host"),
])
def test_bad_ssh_urls_are_one_line_user_errors(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        parse_ssh_url(text, local_user="me")
    assert "\n" not in str(caught.value)


def test_known_hosts_names_and_display() -> None:
    assert SshUrl("root", "host", 22).known_hosts_name == "host"
    assert SshUrl("root", "127.0.0.1", 2222).known_hosts_name == "[127.0.0.1]:2222"
    assert str(SshUrl("root", "::1", 2200)) == "ssh://root@[::1]:2200"
    assert str(SshUrl("root", "host", 22)) == "ssh://root@host:22"


# --- known_hosts -----------------------------------------------------------------------------------


def hashed_name(name: str, salt: bytes) -> str:
    """OpenSSH's HashKnownHosts form: |1|base64(salt)|base64(HMAC-SHA1(salt, name))."""
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def test_load_known_hosts_finds_plain_hashed_and_port_entries(tmp_path: Path) -> None:
    lab_keys = keys.ensure_keys(tmp_path / "a")
    other = keys.ensure_keys(tmp_path / "b")
    file = tmp_path / "known_hosts"
    file.write_text(
        "# a comment\n\n"
        f"plain.example {lab_keys.host_public}\n"
        f"{hashed_name('[10.0.0.5]:2222', os.urandom(20))} {other.host_public}\n"
        f"@cert-authority *.example {other.host_public}\n"
        "garbage line\n")
    known = load_known_hosts(file, SshUrl("root", "plain.example", 22))
    plain = known.lookup("plain.example")
    assert plain is not None and plain["ssh-ed25519"].get_base64() == lab_keys.host_public.split()[1]
    hashed = known.lookup("[10.0.0.5]:2222")
    assert hashed is not None and hashed["ssh-ed25519"].get_base64() == other.host_public.split()[1]
    # The same address on the default port is another name: not known.
    assert known.lookup("10.0.0.5") is None
    assert known.lookup("other.example") is None


def test_a_missing_known_hosts_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        load_known_hosts(tmp_path / "nope", SshUrl("root", "10.0.0.5", 2222))
    message = str(caught.value)
    assert "[10.0.0.5]:2222" in message and str(tmp_path / "nope") in message and "does not exist" in message
    assert f"ssh-keyscan -p 2222 10.0.0.5 >> {tmp_path / 'nope'}" in message


# --- keys ------------------------------------------------------------------------------------------


def test_a_passphrase_protected_key_is_refused_not_prompted_for(tmp_path: Path) -> None:
    key = tmp_path / "enc"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(key)], check=True)
    with pytest.raises(UserError, match="passphrase-protected: load it into ssh-agent"):
        load_private_key(key)
    with pytest.raises(UserError, match="no such file"):
        load_private_key(tmp_path / "missing")
    with pytest.raises(UserError, match="not a private key"):
        load_private_key(key.with_suffix(".pub"))


def test_an_rsa_key_loads(tmp_path: Path) -> None:
    key = tmp_path / "rsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(key)], check=True)
    assert load_private_key(key).get_name() == "ssh-rsa"


# --- connecting: the host key decides before anything runs -----------------------------------------


@pytest.fixture
def lab_keys(tmp_path: Path) -> keys.LabKeys:
    return keys.ensure_keys(tmp_path / "cache")


@pytest.fixture
def sshd(tmp_path: Path, lab_keys: keys.LabKeys) -> Iterator[FakeSshd]:
    root = tmp_path / "remote"
    root.mkdir()
    server = FakeSshd(root, paramiko.Ed25519Key.from_private_key_file(str(lab_keys.host_private)),
                      paramiko.Ed25519Key.from_private_key_file(str(lab_keys.client_private)))
    yield server
    server.stop()


def url_of(sshd: FakeSshd) -> SshUrl:
    return SshUrl("root", "127.0.0.1", sshd.port)


def test_a_host_in_known_hosts_is_accepted(sshd: FakeSshd, lab_keys: keys.LabKeys, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"{hashed_name(f'[127.0.0.1]:{sshd.port}', b'salt' * 5)} {lab_keys.host_public}\n")
    before = known.read_text()
    with connect(url_of(sshd), lab_keys.client_private, known, timeout=10) as target:
        assert target.run("echo hi", 10).out == "hi\n"
    assert known.read_text() == before  # never written to


def test_an_unknown_host_is_refused_with_the_keyscan_line(sshd: FakeSshd, lab_keys: keys.LabKeys,
                                                          tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"127.0.0.1 {lab_keys.host_public}\n")  # port 22's entry, not this port's
    with pytest.raises(UserError) as caught:
        connect(url_of(sshd), lab_keys.client_private, known, timeout=10)
    message = str(caught.value)
    assert "\n" not in message
    assert f"[127.0.0.1]:{sshd.port} is not in {known}" in message
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known}" in message
    assert "SHA256:" in message  # what it offered, to compare with the machine's own
    assert sshd.commands == []
    assert known.read_text() == f"127.0.0.1 {lab_keys.host_public}\n"  # not added


def test_a_changed_host_key_is_refused(sshd: FakeSshd, lab_keys: keys.LabKeys, tmp_path: Path) -> None:
    other = keys.ensure_keys(tmp_path / "other")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {other.host_public}\n")
    with pytest.raises(UserError) as caught:
        connect(url_of(sshd), lab_keys.client_private, known, timeout=10)
    message = str(caught.value)
    assert "\n" not in message
    assert f"[127.0.0.1]:{sshd.port} offered ssh-ed25519 SHA256:" in message and "not its key" in message
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}' -f {known}" in message
    assert sshd.commands == []


def test_a_refused_key_is_a_user_error_without_password_fallback(sshd: FakeSshd, lab_keys: keys.LabKeys,
                                                                 tmp_path: Path) -> None:
    other = keys.ensure_keys(tmp_path / "other")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {lab_keys.host_public}\n")
    with pytest.raises(UserError, match=f"refused the key.*{other.client_private}.*password login is never tried"):
        connect(url_of(sshd), other.client_private, known, timeout=10)


def test_nothing_listening_is_a_one_line_user_error(lab_keys: keys.LabKeys, tmp_path: Path) -> None:
    from lab.vm.machine import free_port

    port = free_port()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {lab_keys.host_public}\n")
    with pytest.raises(UserError, match=f"ssh://root@127.0.0.1:{port}: cannot open an SSH session"):
        connect(SshUrl("root", "127.0.0.1", port), lab_keys.client_private, known, timeout=3)
