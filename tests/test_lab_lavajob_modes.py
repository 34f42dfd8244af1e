"""`lab lava-job --output DIR` (issue 14 item 13c): the exported root image holds the guest's SSH
host private key, so it is not world-readable, and a directory that is the job's alone is 0700."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lab.lava import job as lavajob


def _inputs(tmp_path: Path) -> lavajob.JobInputs:
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("bzImage", "initramfs.cpio", "rootfs.ext4"):
        (cache / name).write_bytes(name.encode() * 10)
        (cache / name).chmod(0o644)  # as the image build leaves it
    return lavajob.JobInputs(cache / "bzImage", cache / "initramfs.cpio", cache / "rootfs.ext4", None, ["pin"],
                             "tcg", "modes", {})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_root_image_and_a_fresh_output_directory_are_private(tmp_path: Path) -> None:
    out = tmp_path / "job"
    out.mkdir(mode=0o755)  # the CLI creates it (writable_directory) before writing the job
    written = lavajob.write(_inputs(tmp_path), out)
    assert _mode(written.artifacts["rootfs"].path) == 0o600
    assert _mode(out) == 0o700
    # What holds no key stays readable for the worker that fetches it.
    assert _mode(written.job) & 0o044 and _mode(written.artifacts["kernel"].path) & 0o044


def test_a_directory_with_other_things_in_it_keeps_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "home"
    out.mkdir(mode=0o755)
    out.chmod(0o755)
    (out / "notes.txt").write_text("the user's own file\n")
    written = lavajob.write(_inputs(tmp_path), out)
    assert _mode(out) == 0o755
    assert _mode(written.artifacts["rootfs"].path) == 0o600


def test_rewriting_a_job_keeps_the_image_private(tmp_path: Path) -> None:
    inputs, out = _inputs(tmp_path), tmp_path / "job"
    lavajob.write(inputs, out)
    (out / "rootfs.ext4").chmod(0o644)
    out.chmod(0o755)
    lavajob.write(inputs, out)
    assert _mode(out / "rootfs.ext4") == 0o600 and _mode(out) == 0o700


def test_an_image_that_cannot_be_chmod_ed_through_its_link_is_copied(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = _inputs(tmp_path)
    real_chmod = Path.chmod
    refused: list[Path] = []

    def chmod(self: Path, mode: int, **kwargs: object) -> None:
        # The first chmod of the hard link fails as it would on an image another user owns.
        if self.name == "rootfs.ext4" and self.stat().st_nlink > 1 and not refused:
            refused.append(self)
            raise PermissionError(1, "Operation not permitted", str(self))
        real_chmod(self, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "chmod", chmod)
    written = lavajob.write(inputs, tmp_path / "job")
    rootfs = written.artifacts["rootfs"].path
    assert refused == [rootfs]
    assert _mode(rootfs) == 0o600 and rootfs.stat().st_nlink == 1
    assert rootfs.read_bytes() == inputs.rootfs.read_bytes()
    assert _mode(inputs.rootfs) == 0o644  # the other user's image is left as it was
