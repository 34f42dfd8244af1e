"""lab.paths: where the cache and the results go."""
from __future__ import annotations

from pathlib import Path

import pytest

from lab.core import paths


def test_repository_directories_exist() -> None:
    assert (paths.IMAGES_DIR / "lab-init.sh.j2").is_file()
    assert (paths.IMAGES_DIR / "initramfs-init.sh.j2").is_file()
    assert (paths.GUEST_TESTS_DIR / "suites").is_dir()
    assert (paths.REPO_ROOT / "lab" / "core" / "paths.py").is_file()


def test_cache_dir_from_lab_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "a" / "b"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()  # created on demand
    assert not (tmp_path / "xdg").exists()


def test_cache_dir_from_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "xdg" / "bpf-kernel-lab"
    assert paths.cache_dir().is_dir()


def test_cache_dir_from_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.cache_dir() == tmp_path / ".cache" / "bpf-kernel-lab"


def test_an_empty_lab_cache_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_CACHE", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "xdg" / "bpf-kernel-lab"


def test_results_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAB_RESULTS", raising=False)
    assert paths.results_dir() == tmp_path / "results"
    assert paths.results_dir().is_absolute()
    monkeypatch.setenv("LAB_RESULTS", "out/runs")
    assert paths.results_dir() == tmp_path / "out" / "runs"
    assert not (tmp_path / "out").exists()  # made by the run record, not here
