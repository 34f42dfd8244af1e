"""Where the lab keeps its cache and writes results."""
from __future__ import annotations

import os
from pathlib import Path

# The repository root: images/ and guest-tests/ are read from here.
REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = REPO_ROOT / "images"
GUEST_TESTS_DIR = REPO_ROOT / "guest-tests"


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
