"""lab.keys: the lab's client key and pinned guest host key."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import paramiko
import pytest

from lab.guest import keys


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_keys_creates_private_keys_0600_in_a_0700_dir(tmp_path: Path) -> None:
    lab_keys = keys.ensure_keys(tmp_path)
    directory = tmp_path / "keys"
    assert _mode(directory) == 0o700
    assert lab_keys.client_private == directory / "client_ed25519.key"
    assert lab_keys.host_private == directory / "host_ed25519.key"
    for private in (lab_keys.client_private, lab_keys.host_private):
        assert _mode(private) == 0o600
        assert private.read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")


def test_private_keys_are_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        lab_keys = keys.ensure_keys(tmp_path)
    finally:
        os.umask(old)
    assert _mode(lab_keys.client_private) == 0o600
    assert _mode(lab_keys.host_private) == 0o600


def test_an_existing_keys_dir_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir(mode=0o755)
    os.chmod(tmp_path / "keys", 0o755)
    keys.ensure_keys(tmp_path)
    assert _mode(tmp_path / "keys") == 0o700


def test_ensure_keys_is_idempotent(tmp_path: Path) -> None:
    first = keys.ensure_keys(tmp_path)
    blobs = {p: p.read_bytes() for p in (tmp_path / "keys").iterdir()}
    second = keys.ensure_keys(tmp_path)
    assert second == first
    assert {p: p.read_bytes() for p in (tmp_path / "keys").iterdir()} == blobs


def test_client_and_host_keys_are_distinct(tmp_path: Path) -> None:
    lab_keys = keys.ensure_keys(tmp_path)
    assert lab_keys.client_public.split()[1] != lab_keys.host_public.split()[1]
    other = keys.ensure_keys(tmp_path / "elsewhere")
    assert other.client_public != lab_keys.client_public  # fresh keys per cache


def test_paramiko_loads_the_keys_and_they_match_their_public_halves(tmp_path: Path) -> None:
    lab_keys = keys.ensure_keys(tmp_path)
    client = paramiko.Ed25519Key.from_private_key_file(str(lab_keys.client_private))
    host = paramiko.Ed25519Key.from_private_key_file(str(lab_keys.host_private))
    kind, blob, comment = lab_keys.client_public.split()
    assert (kind, blob) == ("ssh-ed25519", client.get_base64())
    assert comment == "bpf-kernel-lab-client_ed25519"
    assert lab_keys.host_public == f"ssh-ed25519 {host.get_base64()}"  # no comment: a known_hosts value


def test_a_missing_public_half_regenerates_that_pair_only(tmp_path: Path) -> None:
    first = keys.ensure_keys(tmp_path)
    (tmp_path / "keys" / "client_ed25519.pub").unlink()
    second = keys.ensure_keys(tmp_path)
    assert second.client_public != first.client_public
    assert second.host_public == first.host_public
    client = paramiko.Ed25519Key.from_private_key_file(str(second.client_private))
    assert second.client_public.split()[1] == client.get_base64()
    assert _mode(second.client_private) == 0o600


def test_a_missing_private_half_regenerates_the_pair(tmp_path: Path) -> None:
    first = keys.ensure_keys(tmp_path)
    first.host_private.unlink()
    second = keys.ensure_keys(tmp_path)
    assert second.host_public != first.host_public
    host = paramiko.Ed25519Key.from_private_key_file(str(second.host_private))
    assert second.host_public.split()[1] == host.get_base64()


def test_the_public_file_is_an_authorized_keys_line(tmp_path: Path) -> None:
    lab_keys = keys.ensure_keys(tmp_path)
    line = (tmp_path / "keys" / "client_ed25519.pub").read_text()
    assert line == lab_keys.client_public + "\n"
    assert line.count("\n") == 1


@pytest.mark.skipif(not Path("/usr/bin/ssh-keygen").exists(), reason="ssh-keygen is not installed")
def test_openssh_reads_the_private_key(tmp_path: Path) -> None:
    import subprocess

    lab_keys = keys.ensure_keys(tmp_path)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(lab_keys.client_private)], capture_output=True,
                             text=True, check=True).stdout.split()
    assert derived[:2] == lab_keys.client_public.split()[:2]
