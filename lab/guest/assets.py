"""Everything one kernel needs to boot the lab's guest, from the cache where possible: the
kernel, the shared root image, the kernel's own initramfs, and the lab's SSH keys."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..core.log import Log
from ..kernel import acquire
from ..kernel.acquire import Kernel
from ..kernel.spec import KernelSpec
from . import image, initramfs, keys


@dataclass(frozen=True)
class Prepared:
    kernel: Kernel
    image: image.Image
    initramfs: Path
    keys: keys.LabKeys
    seconds: dict[str, float]  # how long each preparation stage took (near 0 when cached)


def prepare(spec: KernelSpec, cache: Path, log: Log) -> Prepared:
    seconds: dict[str, float] = {}
    started = time.monotonic()
    lab_keys = keys.ensure_keys(cache)
    the_kernel = acquire.fetch(spec, cache, log)
    seconds["kernel"] = round(time.monotonic() - started, 3)
    started = time.monotonic()
    the_image = image.build(image.default_recipe(lab_keys), cache, log)
    seconds["image"] = round(time.monotonic() - started, 3)
    started = time.monotonic()
    the_initramfs = initramfs.build(the_kernel, cache)
    seconds["initramfs"] = round(time.monotonic() - started, 3)
    return Prepared(the_kernel, the_image, the_initramfs, lab_keys, seconds)
