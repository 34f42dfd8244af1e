"""`lab lava-job`: the same kernel, image and suites as a LAVA job for a QEMU device.

The output directory holds everything a LAVA worker needs and nothing it must fetch
from the lab: the job (job.yaml), its artifacts (kernel, initramfs, root image, the
suites bundle with its test definition), and the device configuration that `lava-run`
needs when no lava-server renders one (device.yaml). Artifact URLs are file:// paths
into that directory unless --artifact-url names where it will be published.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import yaml

from ..core.files import is_cache_or_hidden, sha256_file
from ..core.paths import GUEST_TESTS_DIR
from ..guest.init import LAVA_FLAG, LAVA_PROMPT
from ..run import suites as runner
from ..vm.machine import BASE_CMDLINE, MachineSpec

TEMPLATES = Path(__file__).resolve().parent / "templates"
TESTDEF_PATH = "lava-suite.yaml"  # the test definition, at the top of the suites bundle
SUITES_BUNDLE = "lab-suites.tar.gz"
MEMORY_MB = 1024
GUESTFS_SIZE_MB = 64  # LAVA's overlay disk: its scripts and three copies of the suites (~2 MB each)
# Minutes. Under TCG a suite takes one to two minutes here; the bounds leave room for a slower worker.
MINUTES_PER_SUITE = {"tcg": 10, "kvm": 5}
DEPLOY_MINUTES = 10
BOOT_MINUTES = 5


@dataclass(frozen=True)
class Artifact:
    path: Path
    url: str
    sha256: str


@dataclass(frozen=True)
class JobInputs:
    """What the job boots and runs (paths in the lab's cache) and how it is labelled."""

    kernel_image: Path
    initramfs: Path
    rootfs: Path
    rootfs_sha256: str | None  # known from the image build; None: computed here
    suites: list[str]
    accel: str  # "tcg" or "kvm": the QEMU options of the device the job asks for
    job_name: str
    metadata: dict[str, str]  # the job's metadata block
    # What `lab lava-run` records as the run's "request", "kernel" and "image" (README, Results)
    record: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class LavaJob:
    directory: Path
    job: Path
    device: Path
    artifacts: dict[str, Artifact]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    # A JSON string is a YAML scalar that no value can break (jinja's tojson escapes for HTML).
    env.filters["yaml_str"] = lambda value: json.dumps(str(value))
    return env


GUEST_CPUS = MachineSpec.cpus  # the same guest as `lab run` boots


def qemu_extra_options(accel: str) -> list[str]:
    """QEMU options beyond LAVA's qemu device type: the lab's machine, and QEMU exits on a
    panic (panic=-1 reboots, -no-reboot stops) so LAVA sees the connection close, not a hang."""
    options = ["-machine q35", f"-smp {GUEST_CPUS}", "-no-reboot"]
    if accel == "tcg":
        options += ["-accel tcg,thread=multi", "-cpu max"]
    return options


def kernel_cmdline() -> str:
    return f"{BASE_CMDLINE} {LAVA_FLAG}"


def timeouts(suite_count: int, accel: str) -> dict[str, int]:
    test = MINUTES_PER_SUITE[accel] * suite_count
    return {"deploy": DEPLOY_MINUTES, "boot": BOOT_MINUTES, "test": test,
            "action": max(DEPLOY_MINUTES, BOOT_MINUTES, test), "job": DEPLOY_MINUTES + BOOT_MINUTES + test + 5}


def render_testdef(default_suite: str) -> str:
    return _environment().get_template("testdef.yaml.j2").render(default_suite=default_suite)


def render_job(inputs: JobInputs, artifacts: dict[str, Artifact]) -> str:
    suites = [{"name": name, "path": runner.SUITES[name]} for name in inputs.suites]
    return _environment().get_template("job.yaml.j2").render(
        job_name=inputs.job_name, timeouts=timeouts(len(suites), inputs.accel), memory_mb=MEMORY_MB,
        accel=inputs.accel, guestfs_size_mb=GUESTFS_SIZE_MB, extra_options=qemu_extra_options(inputs.accel),
        metadata=inputs.metadata, cmdline=kernel_cmdline(), artifacts=artifacts, prompt=LAVA_PROMPT,
        suites=suites, testdef_path=TESTDEF_PATH)


def render_device(accel: str) -> str:
    return _environment().get_template("device-qemu.yaml.j2").render(
        accel=accel, memory_mb=MEMORY_MB, guestfs_size_mb=GUESTFS_SIZE_MB, extra_options=qemu_extra_options(accel))


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    # Same tree, same bytes: no owners or times in the bundle, and no caches or dotfiles (git's,
    # pytest's), so a checkout and an installed wheel give the same bundle.
    parts = info.name.split("/")
    if is_cache_or_hidden(parts) or info.name.endswith(".pyc"):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def bundle_suites(destination: Path, tests_dir: Path = GUEST_TESTS_DIR) -> Path:
    """guest-tests/ plus the test definition, as the tar.gz a `from: url` definition unpacks."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(tests_dir.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(tests_dir)), filter=_reset)
        testdef = render_testdef(runner.SUITES[next(iter(runner.SUITES))]).encode()
        info = _reset(tarfile.TarInfo(TESTDEF_PATH))
        assert info is not None
        info.size = len(testdef)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(testdef))
    with destination.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out:
        out.write(data.getvalue())
    return destination


def recorded_rootfs_sha256(rootfs: Path) -> str | None:
    """The root image's sha256 as its build recorded it (image.json beside it): no second hash of ~800 MB."""
    try:
        value = json.loads((rootfs.parent / "image.json").read_text()).get("rootfs_sha256")
    except (OSError, ValueError):
        return None
    return str(value) if value else None


def _place(source: Path, destination: Path) -> None:
    """A hard link where the cache and the output share a filesystem, else a copy."""
    destination.unlink(missing_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def _url(base: str | None, path: Path) -> str:
    return f"{base.rstrip('/')}/{path.name}" if base else path.resolve().as_uri()


# The job's own files: a directory holding only these (and dotfiles) is the job's to close.
JOB_FILES = frozenset({"bzImage", "initramfs.cpio", "rootfs.ext4", SUITES_BUNDLE, "job.yaml", "device.yaml",
                       "lava-job.json"})


def _place_private(source: Path, destination: Path) -> None:
    """The root image holds the guest's SSH host private key: 0600. A hard link shares its mode
    with the cache's image (which holds the same key, so it is closed too); a link to an image
    someone else owns cannot be chmod-ed, so that one becomes a copy of our own."""
    _place(source, destination)
    try:
        destination.chmod(0o600)
    except PermissionError:
        destination.unlink()
        shutil.copyfile(source, destination)
        destination.chmod(0o600)


def _close_directory(directory: Path) -> None:
    """0700 when the directory is the job's alone; one with other things in it (a home, /tmp)
    keeps its mode: the files holding keys are 0600 either way."""
    if all(entry.name in JOB_FILES or entry.name.startswith(".") for entry in directory.iterdir()):
        directory.chmod(0o700)


def write(inputs: JobInputs, directory: Path, artifact_url: str | None = None) -> LavaJob:
    directory.mkdir(parents=True, exist_ok=True)
    placed = {"kernel": directory / "bzImage", "initrd": directory / "initramfs.cpio",
              "rootfs": directory / "rootfs.ext4"}
    _place(inputs.kernel_image, placed["kernel"])
    _place(inputs.initramfs, placed["initrd"])
    _place_private(inputs.rootfs, placed["rootfs"])
    _close_directory(directory)
    placed["suites"] = bundle_suites(directory / SUITES_BUNDLE)
    artifacts = {}
    for key, path in placed.items():
        digest = inputs.rootfs_sha256 if key == "rootfs" and inputs.rootfs_sha256 else sha256_file(path)
        artifacts[key] = Artifact(path, _url(artifact_url, path), digest)
    job = directory / "job.yaml"
    job.write_text(render_job(inputs, artifacts))
    device = directory / "device.yaml"
    device.write_text(render_device(inputs.accel))
    (directory / "lava-job.json").write_text(json.dumps(
        {"job_name": inputs.job_name, "suites": inputs.suites, "accel": inputs.accel, "metadata": inputs.metadata,
         **inputs.record,
         "artifacts": {key: {"path": str(a.path), "url": a.url, "sha256": a.sha256} for key, a in artifacts.items()}},
        indent=2) + "\n")
    return LavaJob(directory, job, device, artifacts)


def missing_local_artifacts(job_yaml: Path) -> list[Path]:
    """The job's file:// artifacts that are not there (LAVA would only find out at validation)."""
    job = yaml.safe_load(job_yaml.read_text()) or {}
    urls = []
    for action in job.get("actions", []):
        for kind, body in action.items():
            if kind == "deploy":
                urls += [image.get("url", "") for image in body.get("images", {}).values()]
            elif kind == "test":
                urls += [definition.get("repository", "") for definition in body.get("definitions", [])]
    paths = [Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)) for url in urls
             if isinstance(url, str) and url.startswith("file://")]
    return [path for path in dict.fromkeys(paths) if not path.is_file()]
