"""Stand-ins shared by the host unit tests: a synthetic bzImage and a fake QEMU on PATH."""
from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.vm import machine
from lab.target.base import CommandResult, CommandTimedOut, Sink, as_sink


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


def run_in_bash(command: str, shown_as: str, timeout: float, env: dict[str, str], cwd: Path | None = None,
                stdout_sink: Sink | None = None) -> CommandResult:
    """A Target's `run` on this machine: the process group is killed at the bound, like a guest's
    command whose channel is closed; stdout goes to stdout_sink as well, as the runner expects."""
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    sink = as_sink(stdout_sink)
    if sink is not None:
        sink.write(out)
        sink.close()
    if timed_out:
        raise CommandTimedOut(shown_as, timeout, out.decode(errors="replace"))
    return CommandResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def copy_tree(local_dir: Path, dest: Path, skip_dot_files: bool = False) -> int:
    """A Target's `put_tree` on this machine: `dest` made if missing, the files copied, __pycache__ left out."""
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(local_dir.rglob("*")):
        relative = path.relative_to(local_dir)
        if "__pycache__" in relative.parts or (skip_dot_files and path.name.startswith(".")):
            continue
        target = dest / relative
        if path.is_dir():
            target.mkdir()
        else:
            shutil.copy2(path, target)
            count += 1
    return count


def unpack_archive(archive: Path, dest: Path) -> bool:
    """A Target's `put_archive` on this machine: the tar unpacked into `dest` (made if missing)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="tar")
    except tarfile.TarError:
        return False
    return True
