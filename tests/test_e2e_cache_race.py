"""End-to-end (issue 14 item 10): two `lab run` at once on an empty cache both pass.

Both start on a fresh $LAB_CACHE together, so each would make its own SSH keys, download the
kernel into the same entry and build the same image. The cache's locks make one wait for the
other: the cache ends with one key pair, one kernel entry and one image, and both runs pass.
Costs a kernel download, one image build and two TCG boots.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2ehelpers import REPO, no_qemu_left  # noqa: F401 (no_qemu_left: an autouse fixture)

pytestmark = pytest.mark.boot


def test_two_first_runs_at_once_on_an_empty_cache_both_pass(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {**os.environ, "LAB_CACHE": str(cache)}
    runs = []
    for name in ("first", "second"):
        argv = [sys.executable, "-m", "lab", "run", "--kernel", "debian:6.1", "--suite", "pin",
                "--results", str(tmp_path / name)]
        runs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     cwd=REPO))
    started = time.monotonic()
    outputs = [run.communicate(timeout=3600) for run in runs]
    seconds = time.monotonic() - started
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, f"lab run exited {run.returncode}:\n{out}\n{err}"
        assert "outcome: passed" in out
    # One of them did the work while the other waited for it, and said so.
    logs = "".join(err for _, err in outputs)
    assert logs.count("image: building") == 1, logs
    assert logs.count("kernel: downloading") == 1, logs
    assert "waiting for the lock on" in logs, logs

    images = [p for p in (cache / "images").iterdir()]
    assert len(images) == 1 and images[0].is_dir(), images  # one entry; no staging, no lock file
    assert sorted(p.name for p in images[0].iterdir()) == ["build.log", "image.json", "rootfs.ext4"]
    # The image holds the guest's SSH host private key: its owner's only (issue 14 item 13).
    assert stat.S_IMODE((images[0] / "rootfs.ext4").stat().st_mode) == 0o600
    kernels = [p for p in (cache / "kernels").iterdir()]
    assert len(kernels) == 1 and (kernels[0] / "kernel.json").is_file(), kernels
    assert sorted(p.name for p in (cache / "keys").iterdir()) == [
        "client_ed25519.key", "client_ed25519.pub", "host_ed25519.key", "host_ed25519.pub"]
    # Both runs booted the same image with the same kernel.
    digests = set()
    for name in ("first", "second"):
        run_dirs = [p for p in (tmp_path / name).iterdir() if p.is_dir()]
        assert len(run_dirs) == 1, run_dirs
        metadata = json.loads((run_dirs[0] / "metadata.json").read_text())
        assert metadata["outcome"] == "passed"
        digests.add(metadata["image"]["digest"])
    assert len(digests) == 1
    print(f"two first runs at once: {seconds:.0f} s")  # shown with -s: the measured cost
