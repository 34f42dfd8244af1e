"""A nearly full disk takes part of an unbuffered write and says nothing: the rest must be written
again (and then fail with ENOSPC), never dropped. Found by test_e2e_disk_full.py: a JUnit report
downloaded onto a full tmpfs came out cut at 8192 bytes and was read as an XML error."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from test_e2e_disk_full import mount_tmpfs, small_disk  # noqa: F401, F811  (a fixture)

from lab.core.errors import InfraError
from lab.core.files import write_all
from lab.target import ssh


class Trickle:
    """A raw file that takes at most `most` bytes per write (0: none)."""

    def __init__(self, most: int) -> None:
        self.most, self.got = most, bytearray()

    def write(self, data: memoryview) -> int:
        taken = bytes(data[: self.most])
        self.got += taken
        return len(taken)


def test_every_byte_is_written_in_as_many_calls_as_it_takes() -> None:
    raw = Trickle(3)
    write_all(raw, b"0123456789")
    assert bytes(raw.got) == b"0123456789"


def test_a_write_that_takes_nothing_is_enospc() -> None:
    with pytest.raises(OSError) as caught:
        write_all(Trickle(0), b"x")
    assert caught.value.errno == errno.ENOSPC


@pytest.fixture
def full_disk(small_disk: Path) -> Path:
    """An 8 KiB tmpfs (test_e2e_disk_full.py's fixture mounts and unmounts it)."""
    mount_tmpfs(small_disk, 8)
    return small_disk


class RemoteFile:
    """What paramiko's SFTPFile gives _copy_capped: stat() and read()."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def stat(self) -> os.stat_result:
        return os.stat_result((stat.S_IFREG | 0o644, 0, 0, 1, 0, 0, len(self.data), 0, 0, 0))

    def read(self, size: int) -> bytes:
        chunk = self.data[self.at: self.at + size]
        self.at += len(chunk)
        return chunk


@pytest.mark.parametrize("size", [12_000, 40_000], ids=["in one read", "in two reads"])
def test_a_download_onto_a_full_disk_is_infra_error_not_a_cut_file(full_disk: Path, size: int) -> None:
    # 12 KB is one 32 KiB read and one write(): the 8 KiB disk takes 8192 bytes of it and no error.
    report = full_disk / "junit-pin.xml"
    with pytest.raises(InfraError, match="No space left on device"):
        ssh._copy_capped(RemoteFile(b"<testsuite>" + b"x" * size + b"</testsuite>"), "pin.xml", report)  # type: ignore[arg-type]


def test_a_download_that_fits_is_whole(full_disk: Path) -> None:
    data = b"<testsuite>" + b"y" * 3000 + b"</testsuite>"
    ssh._copy_capped(RemoteFile(data), "pin.xml", full_disk / "junit-pin.xml")  # type: ignore[arg-type]
    assert (full_disk / "junit-pin.xml").read_bytes() == data
