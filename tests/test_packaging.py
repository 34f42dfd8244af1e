"""`pip install .` (not editable) gives a working `lab`: a wheel built from this tree carries
the stage packages, their templates and the repository's data directories (guest-tests/,
images/, kernel-configs/ under lab/share/), and the installed `lab`, run outside any checkout,
writes the same LAVA job a checkout writes. Builds a real wheel and a fresh virtualenv (pip
fetches the runtime dependencies from the package index the host is configured with)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from labfakes import make_bzimage

from lab.lava import job as lava_job

REPO = Path(__file__).resolve().parent.parent
DATA = {"guest-tests": "lab/share/guest_tests", "images": "lab/share/images", "kernel-configs": "lab/share/kernel_configs"}


def tracked(directory: str) -> list[str]:
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", directory], capture_output=True, text=True, check=False)
    if listed.returncode != 0 or not listed.stdout.strip():
        pytest.skip("not a git checkout: the tracked files of the tree are unknown")
    return listed.stdout.split()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
                           capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("bpf_kernel_lab-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with only the wheel (and its dependencies) in it: its bin/ directory."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return venv / "bin"


def test_the_wheel_carries_every_package_template_and_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(REPO)) for p in (REPO / "lab").rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    for directory, inside in DATA.items():
        # Dotfiles (.gitignore) are the checkout's, not the lab's.
        expected |= {inside + name[len(directory):] for name in tracked(directory) if "/." not in name}
    assert not expected - names, sorted(expected - names)
    assert {"lab/lava/templates/job.yaml.j2", "lab/matrix/templates/matrix.html.j2", "lab/bench/client.c"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_installed_lab_runs_outside_the_checkout_and_writes_the_same_lava_job(installed: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{installed}{os.pathsep}{env['PATH']}"
    work = tmp_path / "elsewhere"  # no repository around: the wheel's own data must serve
    work.mkdir()
    helped = subprocess.run(["lab", "--help"], cwd=work, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert helped.returncode == 0 and "lava-job" in helped.stdout, helped.stderr
    where = subprocess.run([str(installed / "python"), "-c", "import lab.core.paths as p; print(p.GUEST_TESTS_DIR)"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert Path(where.stdout.strip()).is_relative_to(installed.parent)

    kernel = make_bzimage(tmp_path / "bzImage", "6.1.99-wheel #1")
    config = tmp_path / "config"
    config.write_text("CONFIG_BPF_SYSCALL=y\n")
    output = tmp_path / "job"
    # The lab's own cache (LAB_CACHE or ~/.cache): the image the checkout's tests built is the
    # wheel's too, since its recipe hash covers the same files.
    wrote = subprocess.run(["lab", "lava-job", "--kernel", str(kernel), "--config", str(config), "--suite", "pin",
                            "--output", str(output)], cwd=work, env=env, capture_output=True, text=True, timeout=900,
                           check=False)
    assert wrote.returncode == 0, wrote.stderr
    assert wrote.stdout.strip() == str(output / "job.yaml")
    assert "job.yaml and device.yaml pass LAVA's schemas" in wrote.stderr or "not checked" in wrote.stderr
    # The suites bundle is byte-for-byte reproducible: the wheel's guest-tests are the tree's.
    from_checkout = lava_job.bundle_suites(tmp_path / "checkout-bundle.tar.gz")
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (output / lava_job.SUITES_BUNDLE, from_checkout)]
    assert digest[0] == digest[1]
