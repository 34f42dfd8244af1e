"""The bytecode a guest compiled for the suites, kept for the next run on the same guest image.

Under TCG the guest's python spends about 11 s of a three-suite run compiling guest-tests/ and
rewriting its test modules' asserts (pytest), every run, because the tree is shipped fresh. The
.pyc files it wrote are fetched back once (one tar, ~1 MB) and shipped with the next run's tree.
Python and pytest check each .pyc against its source's mtime and size (which the upload keeps),
so a stale or foreign file is recompiled, never used: the cache can only save time.

Keyed by the guest image (its python and pytest) and the tree's sources (names, sizes, mtimes).
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ..core.files import is_cache_or_hidden, keep_newest, local_file
from ..target.base import Target, quote_command
from .suites import REMOTE_ROOT, TestTree

ARCHIVE = "pyc.tar"
KEEP = 8  # bytecode sets kept, newest first; each about a megabyte


def cache_key(tree: TestTree, image_digest: str) -> str:
    digest = hashlib.sha256(image_digest.encode())
    for path in sorted(tree.root.rglob("*.py")):
        relative = path.relative_to(tree.root)
        if is_cache_or_hidden(relative.parts):
            continue
        status = path.stat()
        digest.update(f"{relative}\0{status.st_size}\0{int(status.st_mtime)}\n".encode())
    return digest.hexdigest()[:20]


def _store(cache: Path) -> Path:
    return cache / "bytecode"


def _tests(root: str) -> str:
    return f"{root}/guest-tests"


def restore(target: Target, cache: Path, key: str, timeout: float, root: str = REMOTE_ROOT) -> bool:
    """Unpack the kept bytecode into the shipped tree; False when there is none for this key."""
    kept = _store(cache) / key
    if not (kept / ARCHIVE).is_file():
        return False
    os.utime(kept)  # recently used: the last to be evicted
    return target.put_archive(kept / ARCHIVE, _tests(root), timeout)


def keep(target: Target, cache: Path, key: str, timeout: float, root: str = REMOTE_ROOT) -> bool:
    """Fetch what the guest compiled into the cache (once per key); True when it was kept now."""
    store = _store(cache)
    if (store / key / ARCHIVE).is_file():
        return False
    archive = f"{root}/out/{ARCHIVE}"
    pack = (f"cd {quote_command([_tests(root)])} && find . -path '*/__pycache__/*.pyc' -print0 "
            f"| tar --null -cf {quote_command([archive])} -T -")
    if target.run(pack, timeout).rc != 0:
        return False
    with local_file(store, "writing"):
        store.mkdir(parents=True, exist_ok=True)
        partial = store / f".{key}.{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
    try:
        if not target.get(archive, partial / ARCHIVE, timeout):
            return False
        with local_file(store, "writing"):
            try:
                partial.rename(store / key)
            except OSError:
                return False  # another run kept the same key first
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    keep_newest(store, KEEP)
    return True
