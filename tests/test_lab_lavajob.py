"""`lab lava-job`'s output: the job, the device, the suites bundle, and LAVA's own schema on them."""
from __future__ import annotations

import hashlib
import io
import shlex
import stat
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from lab.lava import job as lavajob
from lab.lava import schema as lavaschema
from lab.run import suites as runner
from lab.guest.init import LAVA_FLAG, LAVA_PROMPT

LAVA_COMMON = lavaschema.lava_python()
needs_lava_common = pytest.mark.skipif(LAVA_COMMON is None, reason="lava-common is not installed (make setup installs it)")


def _inputs(tmp_path: Path, suites: list[str], accel: str = "tcg") -> lavajob.JobInputs:
    files = {}
    for name, content in (("bzImage", b"kernel"), ("initramfs", b"initramfs"), ("rootfs.ext4", b"rootfs" * 100)):
        files[name] = tmp_path / "cache" / name
        files[name].parent.mkdir(parents=True, exist_ok=True)
        files[name].write_bytes(content)
    return lavajob.JobInputs(files["bzImage"], files["initramfs"], files["rootfs.ext4"], None, suites, accel,
                             "bpf-kernel-lab test job", {"lab.kernel": "debian:6.1", "lab.note": "it's \"quoted\": yes"})


def _write(tmp_path: Path, suites: list[str], accel: str = "tcg", url: str | None = None) -> tuple[lavajob.LavaJob, dict]:
    written = lavajob.write(_inputs(tmp_path, suites, accel), tmp_path / "out", url)
    return written, yaml.safe_load(written.job.read_text())


def test_job_boots_the_lab_kernel_image_and_root_with_the_lava_flag(tmp_path: Path) -> None:
    written, job = _write(tmp_path, ["maps", "dump", "pin"])
    assert job["device_type"] == "qemu"
    deploy, boot, test = (next(iter(action.values())) for action in job["actions"])
    images = deploy["images"]
    assert set(images) == {"kernel", "initrd", "rootfs"}
    kernel_arg = images["kernel"]["image_arg"]
    argv = shlex.split(kernel_arg)  # LAVA's QEMU command line is split as a shell would
    assert argv[:3] == ["-kernel", "{kernel}", "-append"] and len(argv) == 4
    assert {LAVA_FLAG, "console=ttyS0,115200", "panic=-1"} <= set(argv[3].split())
    assert images["rootfs"]["image_arg"] == "-drive format=raw,file={rootfs},if=virtio"
    for key, image in images.items():
        artifact = written.artifacts[key]
        assert image["url"] == artifact.path.as_uri() and artifact.path.parent == written.directory
        assert image["sha256sum"] == hashlib.sha256(artifact.path.read_bytes()).hexdigest()
    assert boot["method"] == "qemu" and boot["prompts"] == [LAVA_PROMPT]
    # Metadata strings survive quotes and colons.
    assert job["metadata"]["lab.note"] == "it's \"quoted\": yes"


def test_one_test_definition_per_suite_in_the_order_asked(tmp_path: Path) -> None:
    _, job = _write(tmp_path, ["pin", "maps"])
    definitions = job["actions"][2]["test"]["definitions"]
    assert [d["name"] for d in definitions] == ["pin", "maps"]
    assert [d["parameters"]["SUITE"] for d in definitions] == [runner.SUITES["pin"], runner.SUITES["maps"]]
    assert all(d["from"] == "url" and d["path"] == lavajob.TESTDEF_PATH and d["compression"] == "gz" for d in definitions)


def test_timeouts_grow_with_the_suites_and_cover_every_action(tmp_path: Path) -> None:
    _, one = _write(tmp_path / "a", ["pin"])
    _, three = _write(tmp_path / "b", ["maps", "dump", "pin"])
    assert three["actions"][2]["test"]["timeout"]["minutes"] == 3 * one["actions"][2]["test"]["timeout"]["minutes"]
    for job in (one, three):
        action_minutes = sum(next(iter(a.values()))["timeout"]["minutes"] for a in job["actions"])
        assert job["timeouts"]["job"]["minutes"] > action_minutes


def test_tcg_and_kvm_ask_the_device_for_different_qemu_options(tmp_path: Path) -> None:
    _, tcg = _write(tmp_path / "t", ["pin"], "tcg")
    _, kvm = _write(tmp_path / "k", ["pin"], "kvm")
    assert tcg["context"]["no_kvm"] is True and "-accel tcg,thread=multi" in tcg["context"]["extra_options"]
    assert kvm["context"]["no_kvm"] is False and not any("tcg" in o for o in kvm["context"]["extra_options"])
    assert "-no-reboot" in tcg["context"]["extra_options"]  # a panic ends QEMU, LAVA sees the console close
    kvm_device = yaml.safe_load(lavajob.render_device("kvm"))
    tcg_device = yaml.safe_load(lavajob.render_device("tcg"))
    assert "-enable-kvm" in kvm_device["actions"]["boot"]["methods"]["qemu"]["parameters"]["options"]
    assert "-enable-kvm" not in tcg_device["actions"]["boot"]["methods"]["qemu"]["parameters"]["options"]
    # No network for the guest: the suites need none.
    assert "-net none" in tcg_device["actions"]["boot"]["methods"]["qemu"]["parameters"]["options"]
    assert tcg_device["actions"]["deploy"]["methods"]["image"]["parameters"]["guest"]["interface"] == "virtio"


def test_artifact_url_names_where_the_directory_is_published(tmp_path: Path) -> None:
    _, job = _write(tmp_path, ["pin"], url="https://artifacts.example/lab/run-1/")
    images = job["actions"][0]["deploy"]["images"]
    assert images["kernel"]["url"] == "https://artifacts.example/lab/run-1/bzImage"
    assert job["actions"][2]["test"]["definitions"][0]["repository"] == "https://artifacts.example/lab/run-1/lab-suites.tar.gz"


def test_recorded_rootfs_sha256_is_used_instead_of_hashing_again(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path, ["pin"])
    (inputs.rootfs.parent / "image.json").write_text('{"rootfs_sha256": "ab" }')
    recorded = lavajob.recorded_rootfs_sha256(inputs.rootfs)
    assert recorded == "ab"
    written = lavajob.write(lavajob.JobInputs(**{**inputs.__dict__, "rootfs_sha256": recorded}), tmp_path / "out")
    assert written.artifacts["rootfs"].sha256 == "ab"
    assert lavajob.recorded_rootfs_sha256(tmp_path / "nowhere" / "rootfs.ext4") is None


def test_suites_bundle_holds_the_guest_tests_and_the_test_definition(tmp_path: Path) -> None:
    bundle = lavajob.bundle_suites(tmp_path / "a.tar.gz")
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
        members = {m.name: m for m in tar.getmembers()}
        testdef = yaml.safe_load(tar.extractfile(lavajob.TESTDEF_PATH).read())  # type: ignore[union-attr]
    assert {"lava-run-suite.sh", "lavasignals.py", "lavacase.py", "labstream.py", "conftest.py", "pytest.ini"} <= names
    assert any(name.startswith("suites/maps/test_") for name in names)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert members["lava-run-suite.sh"].mode & stat.S_IXUSR
    assert testdef["metadata"]["format"] == "Lava-Test Test Definition 1.0"
    assert testdef["run"]["steps"] == ['./lava-run-suite.sh "$SUITE"']
    assert testdef["params"]["SUITE"] in runner.SUITES.values()
    # Same tree, same bytes: a job's sha256 does not change with the time it was written.
    assert lavajob.bundle_suites(tmp_path / "b.tar.gz").read_bytes() == bundle.read_bytes()


def test_the_bundle_tracks_the_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "suites" / "maps").mkdir(parents=True)
    (tree / "suites" / "maps" / "test_x.py").write_text("def test_x(): pass\n")
    first = lavajob.bundle_suites(tmp_path / "1.tar.gz", tree).read_bytes()
    (tree / "suites" / "maps" / "test_x.py").write_text("def test_x(): assert 0\n")
    assert lavajob.bundle_suites(tmp_path / "2.tar.gz", tree).read_bytes() != first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert tar.getmember("suites/maps/test_x.py").mtime == 0


@needs_lava_common
@pytest.mark.parametrize("accel", ["tcg", "kvm"])
def test_lava_common_accepts_the_job_and_the_device(tmp_path: Path, accel: str) -> None:
    written, _ = _write(tmp_path, ["maps", "dump", "pin"], accel)
    verdict = lavaschema.check(written.job, written.device, LAVA_COMMON)
    assert verdict is not None and verdict.ok, verdict


@needs_lava_common
@pytest.mark.parametrize("breakage, expected", [
    (lambda job: job.pop("visibility"), "visibility"),
    (lambda job: job["context"].update(no_such_variable=1), "no_such_variable"),
    (lambda job: job["actions"][2]["test"]["definitions"][0].pop("compression"), "definitions"),
    (lambda job: job["actions"][1]["boot"].update(method="qemu-typo"), "qemu"),
])
def test_lava_common_rejects_a_broken_job(tmp_path: Path, breakage, expected: str) -> None:
    written, job = _write(tmp_path, ["pin"])
    breakage(job)
    written.job.write_text(yaml.safe_dump(job))
    verdict = lavaschema.check(written.job, written.device, LAVA_COMMON)
    assert verdict is not None and not verdict.ok
    assert expected in verdict.message


@needs_lava_common
def test_lava_common_rejects_a_device_without_its_timeouts(tmp_path: Path) -> None:
    written, _ = _write(tmp_path, ["pin"])
    device = yaml.safe_load(written.device.read_text())
    device.pop("timeouts")
    written.device.write_text(yaml.safe_dump(device))
    verdict = lavaschema.check(written.job, written.device, LAVA_COMMON)
    assert verdict is not None and not verdict.ok and "timeouts" in verdict.message


def test_without_lava_common_there_is_no_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # This interpreter (the lab's venv) has no lava-common, and there is no lava-run to ask.
    monkeypatch.setattr(lavaschema.shutil, "which", lambda name: None)
    monkeypatch.setattr(lavaschema, "SYSTEM_PYTHON", sys.executable)
    written, _ = _write(tmp_path, ["pin"])
    assert lavaschema.lava_python() is None
    assert lavaschema.check(written.job, written.device) is None
