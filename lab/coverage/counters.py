"""A suite's gcov counters (the .gcda files the guest's /sys/kernel/debug/gcov held after it)
laid beside the build's notes files, so gcov reads them as if the build had run them."""
from __future__ import annotations

import shutil
import tarfile
from pathlib import PurePosixPath, Path

from ..core.errors import InfraError
from ..kernel.profiling import OBJ


def object_path(member: str) -> PurePosixPath | None:
    """Where a counters file goes in the object directory: debugfs names it by the build's
    absolute object path (`/.../src/lab-obj/kernel/bpf/syscall.gcda`); the part after `lab-obj`."""
    parts = PurePosixPath(member).parts
    if OBJ not in parts or ".." in parts or not member.endswith(".gcda"):
        return None
    rest = parts[len(parts) - parts[::-1].index(OBJ):]
    return PurePosixPath(*rest) if rest else None


def lay_out(packed: Path, material: Path, work: Path) -> int:
    """work/ becomes the build's coverage tree (sources, notes) with this suite's counters in its
    object directory; how many counters files there were."""
    shutil.copytree(material, work, dirs_exist_ok=False)
    placed = 0
    try:
        with tarfile.open(packed, mode="r:gz") as tar:
            for member in tar:
                relative = object_path(member.name)
                if relative is None or not member.isfile():
                    continue  # only regular .gcda files under the object directory, never outside it
                extracted = tar.extractfile(member)
                if extracted is None:
                    continue
                target = work / OBJ / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(extracted.read())
                placed += 1
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InfraError(f"the gcov counters in {packed} cannot be read: {exc}") from exc
    return placed
