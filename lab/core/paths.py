"""Where the lab keeps its cache and writes results."""
from __future__ import annotations

import os
from pathlib import Path

from .places import writable_directory

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # lab/
# The repository root (a checkout or an editable install); for a wheel, where lab/ is installed.
REPO_ROOT = PACKAGE_ROOT.parent


def _data_root() -> tuple[Path, Path, Path]:
    """images/, guest-tests/ and kernel-configs/: the checkout's own, or the copies a wheel
    installs under lab/share/ (pyproject.toml maps them there)."""
    if (REPO_ROOT / "guest-tests").is_dir() and (REPO_ROOT / "images").is_dir():
        return REPO_ROOT / "images", REPO_ROOT / "guest-tests", REPO_ROOT / "kernel-configs"
    share = PACKAGE_ROOT / "share"
    return share / "images", share / "guest_tests", share / "kernel_configs"


IMAGES_DIR, GUEST_TESTS_DIR, KERNEL_CONFIGS_DIR = _data_root()


def cache_dir() -> Path:
    """$LAB_CACHE, else the user's cache directory (XDG), created on demand and proven writable:
    a named one that is not is bad input, the default one the host's failure."""
    explicit = os.environ.get("LAB_CACHE")
    if explicit:
        return writable_directory(Path(explicit), "cache", "$LAB_CACHE", create=True)
    xdg = os.environ.get("XDG_CACHE_HOME")
    named_by = "$XDG_CACHE_HOME" if xdg else None
    return writable_directory(Path(xdg or str(Path.home() / ".cache")) / "bpf-kernel-lab", "cache", named_by,
                              create=True)


def results_dir() -> Path:
    """$LAB_RESULTS, else ./results (to read runs from; `writable_results` for writing them)."""
    return Path(os.environ.get("LAB_RESULTS", "results")).resolve()


def writable_results(given: str | None, resolve: bool = True) -> Path:
    """Where new runs go: --results (given), else $LAB_RESULTS, else ./results; proven writable.
    A relative --results is kept as given when `resolve` is False (`lab run` prints it back)."""
    if given:
        path = Path(given)
        writable_directory(path, "results", "--results")
        return path.resolve() if resolve else path
    named_by = "$LAB_RESULTS" if os.environ.get("LAB_RESULTS") else None
    return writable_directory(results_dir(), "results", named_by)
