"""Stand-ins shared by the host unit tests: a synthetic bzImage and a fake QEMU on PATH."""
from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from lab import machine


def make_bzimage(path: Path, version: str, *, pointer_at: int = 0x3000) -> Path:
    """A file with an x86 boot protocol setup header: "HdrS" at 0x202, version pointer at 0x20e."""
    data = bytearray(0x4000)
    data[0x1FE:0x200] = b"\x55\xaa"
    data[0x202:0x206] = b"HdrS"
    data[0x206:0x208] = (0x020F).to_bytes(2, "little")  # protocol version
    data[0x20E:0x210] = (pointer_at - 0x200).to_bytes(2, "little")
    encoded = version.encode() + b"\0"
    data[pointer_at : pointer_at + len(encoded)] = encoded
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def fake_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """fake_qemu(shell_body) puts a `qemu-system-x86_64` script first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()

    def install(body: str) -> Path:
        script = bin_dir / machine.QEMU
        script.write_text("#!/bin/sh\n" + body + "\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return script

    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return install
