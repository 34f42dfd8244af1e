"""lab.image: the recipe hash, files installed into the root, the root password, packages.txt."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import json
import stat
from pathlib import Path

import paramiko
import pytest

from lab.core import apt
from lab.guest import image
from lab.guest import keys
from lab.core.apt import AptSource
from lab.guest.keys import LabKeys

KEYS = LabKeys(Path("/c.key"), "ssh-ed25519 AAAAclient comment", Path("/h.key"), "ssh-ed25519 AAAAhost")
SOURCES = (AptSource("http://mirror.example/debian", "bookworm", ("main",)),
           AptSource("http://mirror.example/debian-security", "bookworm-security", ("main",)))


def recipe(**changes: object) -> image.ImageRecipe:
    base = image.ImageRecipe("bookworm", SOURCES, ("python3", "openssh-server"),
                             {"/sbin/lab-init": "#!/bin/sh\n", "/etc/ssh/sshd_config": "Port 22\n"}, KEYS)
    return dataclasses.replace(base, **changes)


def test_digest_is_stable() -> None:
    assert recipe().digest() == recipe().digest()
    assert len(recipe().digest()) == 64
    # The files dict's insertion order does not matter.
    reordered = recipe(files={"/etc/ssh/sshd_config": "Port 22\n", "/sbin/lab-init": "#!/bin/sh\n"})
    assert reordered.digest() == recipe().digest()


@pytest.mark.parametrize("changed", [
    recipe(codename="trixie"),
    recipe(packages=("python3", "openssh-server", "strace")),
    recipe(packages=("python3",)),
    recipe(files={"/sbin/lab-init": "#!/bin/sh\necho changed\n", "/etc/ssh/sshd_config": "Port 22\n"}),
    recipe(files={"/sbin/lab-init": "#!/bin/sh\n", "/etc/ssh/sshd_config": "Port 22\n", "/etc/motd": ""}),
    recipe(files={"/sbin/lab-init2": "#!/bin/sh\n", "/etc/ssh/sshd_config": "Port 22\n"}),
    recipe(sources=SOURCES[:1]),
    recipe(sources=(AptSource("http://other-mirror.example/debian", "bookworm", ("main",)),) + SOURCES[1:]),
    recipe(sources=(AptSource("http://mirror.example/debian", "bookworm", ("main", "contrib")),) + SOURCES[1:]),
    recipe(keys=dataclasses.replace(KEYS, client_public="ssh-ed25519 AAAAother comment")),
    recipe(keys=dataclasses.replace(KEYS, host_public="ssh-ed25519 AAAAother")),
], ids=["codename", "package-added", "package-removed", "file-content", "file-added", "file-renamed",
        "source-removed", "source-mirror", "source-component", "client-key", "host-key"])
def test_digest_changes_with_the_recipe(changed: image.ImageRecipe) -> None:
    assert changed.digest() != recipe().digest()


def test_digest_ignores_private_key_paths() -> None:
    moved = recipe(keys=dataclasses.replace(KEYS, client_private=Path("/elsewhere/c.key")))
    assert moved.digest() == recipe().digest()


def test_lock_root_password(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_text(
        "root:$y$j9T$abc$def:19800:0:99999:7:::\n"
        "daemon:*:19800:0:99999:7:::\n"
        "rootless:!:19800:0:99999:7:::\n"
        "labuser:!:19800:0:99999:7:::\n"
    )
    image._lock_root_password(shadow)
    assert shadow.read_text() == (
        "root:*:19800:0:99999:7:::\n"
        "daemon:*:19800:0:99999:7:::\n"
        "rootless:!:19800:0:99999:7:::\n"
        "labuser:!:19800:0:99999:7:::\n"
    )


@pytest.mark.parametrize("field", ["!", "!*", "", "$6$salt$hash"])
def test_lock_root_password_makes_any_root_entry_star(tmp_path: Path, field: str) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_text(f"root:{field}:19800:0:99999:7:::")  # no trailing newline
    image._lock_root_password(shadow)
    assert shadow.read_text() == "root:*:19800:0:99999:7:::\n"


def test_read_packages_ignores_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "packages.txt"
    path.write_text("# header\npython3\n\n  openssh-server  # the daemon\n#kmod\nbpftool\n")
    assert image.read_packages(path) == ("python3", "openssh-server", "bpftool")


def test_the_repositorys_packages_txt() -> None:
    packages = image.read_packages()
    assert packages, "images/packages.txt lists no package"
    assert all(p and " " not in p and not p.startswith("#") for p in packages)
    # What the guest needs: pytest for the suites, sshd for the host, python3.
    assert {"python3", "python3-pytest", "openssh-server"} <= set(packages)


def test_install_files_into_a_root(tmp_path: Path) -> None:
    lab_keys = keys.ensure_keys(tmp_path / "cache")
    root = tmp_path / "root"
    (root / "etc" / "ssh").mkdir(parents=True)
    for old in ("ssh_host_rsa_key", "ssh_host_rsa_key.pub", "ssh_host_ecdsa_key"):
        (root / "etc" / "ssh" / old).write_text("package key\n")
    (root / "etc" / "shadow").write_text("root:!:19800:0:99999:7:::\nnobody:*:19800:0:99999:7:::\n")
    the_recipe = recipe(keys=lab_keys, files={"/sbin/lab-init": "#!/bin/sh\n", "/etc/ssh/sshd_config": "Port 22\n",
                                              "/usr/local/share/lab/note": "x"})
    image._install_files(root, the_recipe)

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert (root / "sbin" / "lab-init").read_text() == "#!/bin/sh\n"
    assert mode(root / "sbin" / "lab-init") == 0o755
    assert mode(root / "etc" / "ssh" / "sshd_config") == 0o644
    assert mode(root / "usr" / "local" / "share" / "lab" / "note") == 0o644
    assert sorted(p.name for p in (root / "etc" / "ssh").glob("ssh_host_*")) == [
        "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]
    host_key = root / "etc" / "ssh" / "ssh_host_ed25519_key"
    assert mode(host_key) == 0o600
    assert paramiko.Ed25519Key.from_private_key_file(str(host_key)).get_base64() == lab_keys.host_public.split()[1]
    assert (root / "etc" / "ssh" / "ssh_host_ed25519_key.pub").read_text() == lab_keys.host_public + "\n"
    authorized = root / "root" / ".ssh" / "authorized_keys"
    assert authorized.read_text() == lab_keys.client_public + "\n"
    assert mode(authorized) == 0o600
    assert mode(root / "root" / ".ssh") == 0o700
    assert (root / "etc" / "shadow").read_text().splitlines()[0] == "root:*:19800:0:99999:7:::"


def test_default_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sources = tmp_path / "test.sources"
    sources.write_text("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n")
    monkeypatch.setenv("LAB_APT_SOURCES", str(sources))
    monkeypatch.setattr(apt, "host_codename", lambda: "bookworm")
    lab_keys = keys.ensure_keys(tmp_path / "cache")
    the_recipe = image.default_recipe(lab_keys)
    assert the_recipe.codename == "bookworm"
    assert the_recipe.sources == (AptSource("http://mirror.example/debian", "bookworm", ("main",)),)
    assert the_recipe.packages == image.read_packages()
    assert set(the_recipe.files) == {"/sbin/lab-init", "/etc/ssh/sshd_config"}
    assert "mount -t bpf" in the_recipe.files["/sbin/lab-init"]
    assert the_recipe.keys == lab_keys


def _record(digest: str, rootfs: Path) -> dict[str, object]:
    stat = rootfs.stat()
    return {"digest": digest, "rootfs_sha256": hashlib.sha256(rootfs.read_bytes()).hexdigest(),
            "rootfs_size": stat.st_size, "rootfs_mtime_ns": stat.st_mtime_ns}


def _cached_image(tmp_path: Path, the_recipe: image.ImageRecipe,
                  record: dict[str, object] | None = None) -> Path:
    """An image directory for ``the_recipe`` under ``tmp_path`` as a build leaves it:
    rootfs.ext4 and its image.json (``record``, or the true one); returns the rootfs."""
    directory = tmp_path / "images" / the_recipe.digest()[:16]
    directory.mkdir(parents=True)
    rootfs = directory / "rootfs.ext4"
    rootfs.write_bytes(b"ext4")
    written = _record(the_recipe.digest(), rootfs) if record is None else record
    (directory / "image.json").write_text(json.dumps(written))
    return rootfs


def test_build_returns_a_cached_image_without_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    the_recipe = recipe()
    digest = the_recipe.digest()
    directory = _cached_image(tmp_path, the_recipe).parent

    def no_build(*args: object) -> None:
        raise AssertionError("a cached image was rebuilt")

    monkeypatch.setattr(image, "_run_logged", no_build)
    lines: list[str] = []
    built = image.build(the_recipe, tmp_path, lines.append)
    assert built == image.Image(directory / "rootfs.ext4", digest)
    assert "cached" in lines[-1]


def test_build_with_a_mismatched_record_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    the_recipe = recipe()
    _cached_image(tmp_path, the_recipe, {"digest": "0" * 64})
    calls: list[list[str]] = []

    class Stop(Exception):
        pass

    def fake_run(argv: list[str], log_path: Path, what: str, **options: object) -> None:
        calls.append(argv)
        raise Stop

    monkeypatch.setattr(image, "_run_logged", fake_run)
    lines: list[str] = []
    with pytest.raises(Stop):
        image.build(the_recipe, tmp_path, lines.append)
    assert calls and calls[0][0] == "mmdebstrap"
    argv = calls[0]
    assert "--include=python3,openssh-server" in argv
    assert argv[-2:] == [s.one_line() for s in SOURCES]
    assert any("does not match" in line for line in lines)
    assert not list((tmp_path / "images").glob(".build-*"))  # the temporary directory is gone


def test_a_touched_but_intact_image_is_still_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    the_recipe = recipe()
    rootfs = _cached_image(tmp_path, the_recipe)
    os.utime(rootfs, ns=(1, 1))  # mtime changed: the sha256 is checked, and it still matches
    monkeypatch.setattr(image, "_run_logged", lambda *args: pytest.fail("rebuilt an intact image"))
    lines: list[str] = []
    assert image.build(the_recipe, tmp_path, lines.append).path == rootfs
    assert "cached" in lines[-1]


def test_a_corrupted_cached_image_is_rebuilt_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    the_recipe = recipe()
    rootfs = _cached_image(tmp_path, the_recipe)
    rootfs.write_bytes(b"EXT4")  # same size, other content, new mtime

    class Stop(Exception):
        pass

    def fake_run(argv: list[str], log_path: Path, what: str, **options: object) -> None:
        raise Stop

    monkeypatch.setattr(image, "_run_logged", fake_run)
    lines: list[str] = []
    with pytest.raises(Stop):
        image.build(the_recipe, tmp_path, lines.append)
    assert any(line.startswith("warning:") and "sha256" in line for line in lines), lines
