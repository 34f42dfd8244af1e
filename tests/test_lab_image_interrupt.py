"""An interrupted image build leaves no mount and no directory behind (issue 14 item 11).

mmdebstrap --mode=root mounts /proc, /sys and /dev inside the root it builds. A stand-in that
does the same (tmpfs mounts under its target, then works forever) is interrupted the ways a lab
is: Ctrl-C (KeyboardInterrupt) and SIGTERM. Needs root, to mount.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_lab_image import KEYS, SOURCES

from lab.core import lock, mounts
from lab.core.errors import InfraError
from lab.guest import image

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

# mmdebstrap's last arguments are the root and then the sources (two here).
FAKE_MMDEBSTRAP = """#!/bin/sh
eval "target=\\${$(($# - 2))}"
mkdir -p "$target/proc" "$target/dev"
mount -t tmpfs lab-test-proc "$target/proc"
mkdir "$target/proc/sys"
mount -t tmpfs lab-test-sys "$target/proc/sys"
mount -t tmpfs lab-test-dev "$target/dev"
echo "a file on the mount" > "$target/dev/on-the-mount"
echo $$ > "$FAKE_PIDFILE"
if [ "$FAKE_MODE" = stubborn ]; then
    trap '' TERM INT HUP
else
    trap 'umount "$target/proc/sys" "$target/proc" "$target/dev"; exit 1' TERM INT
fi
touch "$FAKE_READY"
while :; do sleep 0.1; done
"""


def recipe() -> image.ImageRecipe:
    return image.ImageRecipe("bookworm", SOURCES, ("python3",), {"/sbin/lab-init": "#!/bin/sh\n"}, KEYS)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A fake mmdebstrap first on PATH; afterwards nothing of it is left, whatever the test did."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "mmdebstrap"
    script.write_text(FAKE_MMDEBSTRAP)
    script.chmod(0o755)
    files = {"ready": tmp_path / "ready", "pid": tmp_path / "fake.pid", "cache": tmp_path / "cache"}
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_READY", str(files["ready"]))
    monkeypatch.setenv("FAKE_PIDFILE", str(files["pid"]))
    yield files
    left = mounts.mounts_under(tmp_path)
    for point in left:
        subprocess.run(["umount", "--lazy", str(point)], check=False)
    if files["pid"].exists():
        try:
            os.killpg(int(files["pid"].read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, f"mounts left under the test's directory: {left}"


def interrupt_when_ready(ready: Path) -> None:
    """Ctrl-C, as soon as the fake has mounted: a SIGALRM every 50 ms that raises once it has."""

    def tick(signum: int, frame: object) -> None:
        if ready.exists():
            signal.setitimer(signal.ITIMER_REAL, 0)
            raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, tick)
    signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def assert_nothing_left(cache: Path, pid: int) -> None:
    assert mounts.mounts_under(cache) == []
    assert list((cache / "images").iterdir()) == []  # no .build-* directory, no entry, no lock file
    assert gone(pid)
    # Nor its process group's members: the SIGKILL reaches its sleep too (which init then reaps).
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, check=False).returncode == 0:
        assert time.monotonic() < deadline, "a process of the fake's group outlived the build"
        time.sleep(0.1)


def test_ctrl_c_with_an_mmdebstrap_that_ignores_signals(fake: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_MODE", "stubborn")
    monkeypatch.setattr(image, "STOP_GRACE_SECONDS", 1.0)
    lines: list[str] = []
    interrupt_when_ready(fake["ready"])
    try:
        with pytest.raises(KeyboardInterrupt):
            image.build(recipe(), fake["cache"], lines.append)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    # Stopped (SIGTERM, ignored; SIGKILL after the grace), then its mounts unmounted deepest first.
    unmounted = [line for line in lines if line.startswith("unmounted ")]
    assert len(unmounted) == 3, lines
    assert unmounted[0].endswith("/root/proc/sys")
    assert_nothing_left(fake["cache"], int(fake["pid"].read_text()))


TERMINATED_BUILD = """
import signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_lab_image import KEYS, SOURCES
from lab.cli.main import _interrupt
from lab.guest import image
signal.signal(signal.SIGTERM, _interrupt)  # what `lab` does: SIGTERM takes Ctrl-C's path
recipe = image.ImageRecipe("bookworm", SOURCES, ("python3",), {"/sbin/lab-init": "#!/bin/sh\\n"}, KEYS)
try:
    image.build(recipe, Path(sys.argv[1]), lambda line: print(line, flush=True))
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def test_sigterm_of_the_lab_stops_mmdebstrap_which_unmounts_its_own(fake: dict[str, Path],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_MODE", "cooperative")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    lab = subprocess.Popen([sys.executable, "-c", TERMINATED_BUILD, str(fake["cache"]), str(REPO / "tests")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 30
    while not fake["ready"].exists() and lab.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake["ready"].exists(), lab.communicate()[0] if lab.poll() is not None else "the fake never got ready"
    assert len(mounts.mounts_under(fake["cache"])) == 3
    lab.send_signal(signal.SIGTERM)
    out, _ = lab.communicate(timeout=60)
    assert lab.returncode == 130, out
    assert "unmounted" not in out  # mmdebstrap (the fake) unmounted its own on the forwarded SIGTERM
    assert_nothing_left(fake["cache"], int(fake["pid"].read_text()))


HOLD = """
import sys, time
from pathlib import Path
from lab.core import lock
with lock.locked(Path(sys.argv[1]), lambda line: None, "a live build"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_stale_build_directories_are_unmounted_and_removed_but_a_live_ones_is_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: dict[str, Path]) -> None:
    images = fake["cache"] / "images"
    own = lock.staging_path(images / recipe().digest()[:16])  # this recipe's, from a killed lab
    dead = images / ".build-0123456789abcdef"  # another recipe's, from a killed lab
    live = images / ".build-fedcba9876543210"  # another recipe's, being built by a live lab
    for staging in (own, dead, live):
        (staging / "root" / "proc").mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "lab-test-stale", str(staging / "root" / "proc")], check=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock.entry_of_staging(live))],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"

        class Stop(Exception):
            pass

        def fail_at_once(argv: list[str], log_path: Path, what: str, **options: object) -> None:
            raise Stop

        monkeypatch.setattr(image, "_run_logged", fail_at_once)
        lines: list[str] = []
        with pytest.raises(Stop):
            image.build(recipe(), fake["cache"], lines.append)
        assert not own.exists() and not dead.exists()
        assert mounts.mounts_under(live) == [live / "root" / "proc"]  # a live build's mounts are its own
        assert sum("left by an interrupted build" in line for line in lines) == 2, lines
    finally:
        holder.kill()
        holder.wait()
        subprocess.run(["umount", str(live / "root" / "proc")], check=False)


def test_remove_tree_never_crosses_a_mount_it_could_not_unmount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                fake: dict[str, Path]) -> None:
    tree = tmp_path / "tree"
    (tree / "dev").mkdir(parents=True)
    (tree / "a-file").write_text("x")
    subprocess.run(["mount", "-t", "tmpfs", "lab-test-cross", str(tree / "dev")], check=True)
    (tree / "dev" / "host-node").write_text("not the lab's to delete")
    try:
        monkeypatch.setattr(mounts, "unmount_under", lambda root, log: None)  # an unmount that failed
        with pytest.raises(InfraError, match="is a mount point; not removing across it"):
            mounts.remove_tree(tree, lambda line: None)
        assert (tree / "dev" / "host-node").read_text() == "not the lab's to delete"
    finally:
        subprocess.run(["umount", str(tree / "dev")], check=False)


def test_mounts_under_reads_mountinfo_deepest_first_and_unescapes() -> None:
    info = (
        "30 27 0:40 / /cache/images/.build-x/root/proc rw - proc proc rw\n"
        "31 30 0:41 / /cache/images/.build-x/root/proc/sys rw - sysfs sys rw\n"
        "32 27 0:42 / /cache/images/.build-x/root/my\\040dev rw - tmpfs t rw\n"
        "33 27 0:43 / /cache/images/.build-xy/root/proc rw - proc proc rw\n"
    )
    assert mounts.mounts_under(Path("/cache/images/.build-x"), info) == [
        Path("/cache/images/.build-x/root/proc/sys"),
        Path("/cache/images/.build-x/root/proc"),
        Path("/cache/images/.build-x/root/my dev"),
    ]
