"""The cache shared by concurrent labs (issue 14 item 10): one writer per entry (lab.core.lock),
and a damaged entry repaired with a warning, never a traceback: keys whose halves disagree, a
truncated image.json, kernel.json or source.json, an entry that lost its kernel image."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_lab_kernel import GOOD_CONFIG, PACKAGE, VERSION, _build_deb, fake_apt  # noqa: F401 (a fixture)
from test_lab_ksource import make_tarball

from lab.core import lock
from lab.core.errors import InfraError
from lab.guest import image, keys
from lab.kernel import acquire
from lab.kernel import source as ksource
from lab.kernel.spec import DebianSpec

REPO = Path(__file__).resolve().parent.parent


def logs() -> tuple[list[str], Callable[[str], None]]:
    lines: list[str] = []
    return lines, lines.append


def python(snippet: str, *args: str) -> subprocess.Popen[str]:
    """A python process running `snippet` with this checkout's lab importable."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", snippet, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


# --- the lock -------------------------------------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from lab.core import lock
with lock.locked(Path(sys.argv[1]), lambda line: None, "the test entry"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_an_entry_whose_directory_is_not_there_yet_is_locked(tmp_path: Path) -> None:
    # Seen on a fresh cache: the first `lab kernel build` compiled, then could not lock builds/<id>.
    entry = tmp_path / "fresh-cache" / "builds" / "6.1.192-abc"
    with lock.locked(entry, lambda line: None, "build:6.1.192-abc"):
        assert lock.lock_path(entry).exists()


def test_a_held_lock_is_waited_for_with_the_holder_named_then_given_up_on(tmp_path: Path) -> None:
    entry = tmp_path / "entry"
    holder = python(HOLD, str(entry), "30")
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        lines, log = logs()
        started = time.monotonic()
        with pytest.raises(InfraError) as caught, lock.locked(entry, log, "the test entry", wait_seconds=1.0):
            pytest.fail("took a lock another process holds")
        assert 1.0 <= time.monotonic() - started < 10
        assert lines[0].startswith(f"waiting for the lock on the test entry ({tmp_path / '.entry.lock'}) "
                                   f"held by pid {holder.pid} (")
        assert f"held by pid {holder.pid}" in str(caught.value) and "gave up after 1 s" in str(caught.value)
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_whose_holder_exits_is_taken_and_leaves_no_file(tmp_path: Path) -> None:
    entry = tmp_path / "entry"
    holder = python(HOLD, str(entry), "1")
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    lines, log = logs()
    with lock.locked(entry, log, "the test entry") as fd:
        assert (tmp_path / ".entry.lock").read_text() == f"{os.getpid()}\n"
        assert fd >= 0
    assert holder.wait() == 0
    assert len(lines) == 1 and "waiting" in lines[0]
    assert list(tmp_path.iterdir()) == []  # the lock file went with the lock


def test_a_killed_holders_lock_is_free_at_once(tmp_path: Path) -> None:
    entry = tmp_path / "entry"
    holder = python(HOLD, str(entry), "60")
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    with lock.unless_locked(entry) as free:
        assert not free
    holder.kill()
    holder.wait()
    with lock.unless_locked(entry) as free:
        assert free  # flock dies with its holder: no stale lock, whatever the file still says


COUNT = """
import sys
from pathlib import Path
from lab.core import lock
entry, counter = Path(sys.argv[1]), Path(sys.argv[2])
for _ in range(150):
    with lock.locked(entry, lambda line: None, "the counter"):
        value = int(counter.read_text())
        counter.write_text(str(value + 1))
"""


def test_locked_sections_never_overlap_even_as_lock_files_come_and_go(tmp_path: Path) -> None:
    # Each release removes the lock file and each lock makes a new one: a lock taken on a removed
    # file would let two writers in, and the counter would lose increments.
    counter = tmp_path / "counter"
    counter.write_text("0")
    procs = [python(COUNT, str(tmp_path / "entry"), str(counter)) for _ in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert counter.read_text() == "450"


def test_install_replaces_a_damaged_entry_whole(tmp_path: Path) -> None:
    entry = tmp_path / "entry"
    (entry / "old").mkdir(parents=True)
    staging = lock.staging_path(entry)
    staging.mkdir()
    (staging / "new").write_text("x")
    lock.install(staging, entry)
    assert sorted(p.name for p in entry.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]


# --- keys -----------------------------------------------------------------------------------------

ENSURE_KEYS = """
import json, sys, time
from pathlib import Path
from lab.guest import keys
# Key generation made slow (a loaded host): without the lock every process makes its own pair.
quick = keys._write_keypair
keys._write_keypair = lambda path, comment: (time.sleep(0.05), quick(path, comment))[1]
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
made = keys.ensure_keys(Path(sys.argv[1]), lambda line: None)
print(json.dumps([made.client_public, made.host_public]))
"""


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_first_runs_end_with_one_consistent_key_pair(tmp_path: Path, round_: int) -> None:
    cache = tmp_path / "cache"
    go = tmp_path / "go"
    procs = [python(ENSURE_KEYS, str(cache), str(go)) for _ in range(6)]
    time.sleep(1.0)  # every interpreter started and polling
    go.touch()
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        answers.append(tuple(json.loads(out)))
    assert len(set(answers)) == 1, answers  # every process got the same keys
    final = keys.ensure_keys(cache, lambda line: pytest.fail(f"the keys on disk needed repair: {line}"))
    assert (final.client_public, final.host_public) == answers[0]
    for name in ("client_ed25519", "host_ed25519"):
        directory = cache / "keys"
        assert keys.pair_problem(directory / f"{name}.key", directory / f"{name}.pub") is None
    assert sorted(p.name for p in (cache / "keys").iterdir()) == [
        "client_ed25519.key", "client_ed25519.pub", "host_ed25519.key", "host_ed25519.pub"]


def test_a_public_half_that_does_not_match_is_remade_with_a_warning(tmp_path: Path) -> None:
    first = keys.ensure_keys(tmp_path, lambda line: None)
    other = keys.ensure_keys(tmp_path / "other", lambda line: None)
    (tmp_path / "keys" / "host_ed25519.pub").write_text(other.host_public + " bpf-kernel-lab-host_ed25519\n")
    lines, log = logs()
    second = keys.ensure_keys(tmp_path, log)
    assert second.host_public not in (first.host_public, other.host_public)
    assert second.client_public == first.client_public
    assert keys.pair_problem(second.host_private, second.host_private.with_suffix(".pub")) is None
    assert len(lines) == 1 and lines[0].startswith("warning: the SSH key pair") and "does not match" in lines[0]


def test_an_unreadable_private_key_is_remade_with_a_warning(tmp_path: Path) -> None:
    first = keys.ensure_keys(tmp_path, lambda line: None)
    first.client_private.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\ntruncated")
    lines, log = logs()
    second = keys.ensure_keys(tmp_path, log)
    assert second.client_public != first.client_public
    assert keys.pair_problem(second.client_private, second.client_private.with_suffix(".pub")) is None
    assert any("unreadable private key" in line for line in lines), lines


# --- image.json -----------------------------------------------------------------------------------


def fake_steps(keys_of: keys.LabKeys) -> Callable[..., None]:
    """_run_logged that "builds": mmdebstrap makes a small root, mkfs.ext4 writes a file."""

    def run(argv: list[str], log_path: Path, what: str, **options: object) -> None:
        with log_path.open("a") as build_log:
            build_log.write(f"{what} ran\n")
        if argv[0] == "mmdebstrap":
            root = Path(argv[-3])  # the root, then the two sources
            (root / "etc" / "ssh").mkdir(parents=True)
            (root / "etc" / "shadow").write_text("root:!:19000:0:99999:7:::\n")
        else:
            Path(argv[-2]).write_bytes(b"an ext4 image")

    return run


def test_a_truncated_image_json_is_rebuilt_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_lab_image import SOURCES

    lab_keys = keys.ensure_keys(tmp_path, lambda line: None)
    recipe = image.ImageRecipe("bookworm", SOURCES, ("python3",), {"/sbin/lab-init": "#!/bin/sh\n"}, lab_keys)
    monkeypatch.setattr(image, "_run_logged", fake_steps(lab_keys))
    lines, log = logs()
    first = image.build(recipe, tmp_path, log)
    meta = first.path.parent / "image.json"
    assert json.loads(meta.read_text())["digest"] == recipe.digest()
    assert sorted(p.name for p in first.path.parent.iterdir()) == ["build.log", "image.json", "rootfs.ext4"]
    assert not list((tmp_path / "images").glob(".*"))  # no staging, no lock file left

    meta.write_text(meta.read_text()[:40])  # a lab killed mid-write by an older version
    lines.clear()
    second = image.build(recipe, tmp_path, log)
    assert second == first
    assert any(line.startswith("warning: cached image") and "unreadable image.json" in line for line in lines), lines
    assert json.loads(meta.read_text())["digest"] == recipe.digest()  # repaired
    lines.clear()
    image.build(recipe, tmp_path, log)
    assert "cached" in lines[-1]

    first.path.unlink()
    lines.clear()
    image.build(recipe, tmp_path, log)
    assert any("has no rootfs.ext4" in line for line in lines), lines
    assert first.path.is_file()


# --- kernel.json ----------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("dpkg-deb") is None or shutil.which("depmod") is None, reason="needs dpkg-deb, depmod")
@pytest.mark.parametrize("damage", ["truncate", "not-an-object", "lose-the-image"])
def test_a_damaged_kernel_entry_is_downloaded_again_with_a_warning(tmp_path: Path, damage: str,
                                                                   fake_apt: list[str]) -> None:  # noqa: F811
    shutil.move(_build_deb(tmp_path, GOOD_CONFIG), tmp_path / "the.deb")
    cache = tmp_path / "cache"
    lines, log = logs()
    first = acquire.fetch(DebianSpec("6.1"), cache, log)
    meta = first.image.parents[2] / "kernel.json"
    if damage == "truncate":
        meta.write_text(meta.read_text()[:30])
    elif damage == "not-an-object":
        meta.write_text("[]\n")
    else:
        first.image.unlink()
    lines.clear()
    second = acquire.fetch(DebianSpec("6.1"), cache, log)
    assert second == first and second.image.is_file()
    assert len(fake_apt) == 2
    assert any(line.startswith("warning: cached kernel") and "downloading it again" in line for line in lines), lines
    assert sorted(p.name for p in (cache / "kernels").iterdir()) == [f"{PACKAGE}_{VERSION.replace('~', '_')}"]


def test_a_damaged_build_entry_is_an_infra_error_with_one_clear_line(tmp_path: Path) -> None:
    directory = tmp_path / "builds" / "6.1.192-aaaaaaaaaaaa"
    directory.mkdir(parents=True)
    (directory / "kernel.json").write_text('{"image": "/x", "rel')
    with pytest.raises(InfraError) as caught:
        acquire.load_build("6.1.192-aaaaaaaaaaaa", tmp_path)
    message = str(caught.value)
    assert "build:6.1.192-aaaaaaaaaaaa" in message and "unreadable kernel.json" in message
    assert "lab kernel build" in message and "\n" not in message


def test_a_remembered_request_whose_build_is_damaged_is_built_again(tmp_path: Path) -> None:
    from lab.kernel import build as kbuild

    directory = tmp_path / "builds" / "6.1.192-aaaaaaaaaaaa"
    directory.mkdir(parents=True)
    (directory / "kernel.json").write_text("{")
    remembered = tmp_path / "builds" / "requests" / "key"
    remembered.parent.mkdir(parents=True)
    remembered.write_text("6.1.192-aaaaaaaaaaaa\n")
    assert kbuild._remembered(remembered, tmp_path) is None


# --- source.json ----------------------------------------------------------------------------------


def test_a_truncated_source_json_is_unpacked_again_with_a_warning(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "linux.tar.gz")
    cache = tmp_path / "cache"
    lines, log = logs()
    first = ksource.acquire(ksource.TarballSource(tarball), cache, log)
    meta = first.root.parent / "source.json"
    meta.write_text(meta.read_text()[:10])
    lines.clear()
    second = ksource.acquire(ksource.TarballSource(tarball), cache, log)
    assert second == first
    assert any(line.startswith("warning: cached source") and "unpacking it again" in line for line in lines), lines
    assert json.loads(meta.read_text())["version"] == "6.1.192"
    assert [p.name for p in (cache / "sources").iterdir()] == [first.root.parent.name]


def test_a_forced_rebuild_of_a_sound_image_warns_of_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_lab_image import SOURCES

    lab_keys = keys.ensure_keys(tmp_path, lambda line: None)
    recipe = image.ImageRecipe("bookworm", SOURCES, ("python3",), {"/sbin/lab-init": "#!/bin/sh\n"}, lab_keys)
    monkeypatch.setattr(image, "_run_logged", fake_steps(lab_keys))
    image.build(recipe, tmp_path, lambda line: None)
    lines, log = logs()
    image.build(recipe, tmp_path, log, force=True)
    assert any(line.startswith("image: building") for line in lines), lines
    assert not any(line.startswith("warning:") for line in lines), lines
