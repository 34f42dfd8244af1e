"""What is mounted under a directory, unmounted deepest first, and a tree removed without ever
crossing into a mount point (an rmtree through a chroot's bind-mounted /dev deletes the host's).

mmdebstrap --mode=root mounts /proc, /sys and /dev inside the root it builds; a build that is
interrupted can leave them there."""
from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

from .errors import InfraError
from .log import Log

MOUNTINFO = Path("/proc/self/mountinfo")
UMOUNT_SECONDS = 30.0


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in a path as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def mounts_under(root: Path, mountinfo: str | None = None) -> list[Path]:
    """Mount points at or below `root`, deepest first (a point mounted twice is listed twice)."""
    text = MOUNTINFO.read_text() if mountinfo is None else mountinfo
    top = os.path.realpath(root)
    found = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        point = _unescape(fields[4])
        if point == top or point.startswith(top.rstrip("/") + "/"):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _umount(point: Path, *options: str) -> bool:
    try:
        done = subprocess.run(["umount", *options, str(point)], capture_output=True, text=True,
                              timeout=UMOUNT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def unmount_under(root: Path, log: Log) -> None:
    """Unmount everything at or below `root`, deepest first; a lazy unmount is the last resort.
    InfraError if something stays mounted."""
    for _ in range(3):  # a point mounted twice needs a second round
        points = mounts_under(root)
        if not points:
            return
        for point in points:
            if _umount(point) or _umount(point, "--lazy"):
                log(f"unmounted {point}")
    left = mounts_under(root)
    if left:
        raise InfraError(f"cannot unmount {left[0]} (and {len(left) - 1} more under {root}); "
                         f"unmount it by hand, then remove {root}")


def remove_tree(root: Path, log: Log) -> None:
    """Unmount what is mounted under `root`, then remove it, never descending into a directory on
    another filesystem (InfraError instead: something is still mounted there)."""
    if not os.path.lexists(root):
        return
    unmount_under(root, log)
    top = os.lstat(root)
    if not stat.S_ISDIR(top.st_mode):
        os.unlink(root)
        return
    _remove_dir(str(root), top.st_dev)


def _remove_dir(path: str, device: int) -> None:
    with os.scandir(path) as entries:
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                if info.st_dev != device or os.path.ismount(entry.path):
                    raise InfraError(f"{entry.path} is a mount point; not removing across it")
                _remove_dir(entry.path, device)
            else:
                os.unlink(entry.path)
    os.rmdir(path)
