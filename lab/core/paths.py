"""Where the lab keeps its cache and writes results."""
from __future__ import annotations

import os
from pathlib import Path

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
    """$LAB_CACHE, else the user's cache directory (XDG), created on demand."""
    explicit = os.environ.get("LAB_CACHE")
    if explicit:
        path = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(xdg) / "bpf-kernel-lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    """$LAB_RESULTS, else ./results."""
    return Path(os.environ.get("LAB_RESULTS", "results")).resolve()
