"""Build a kernel from source: patch a linked copy, merge fragments, configure, check, make.
A series directory's port for the source's version replaces its own patches (kernel/patches.py).

Cache layers, each keyed by what determines it:
- builds/requests/<request key>: the build id a (source, fragments, patches) request gave,
  so the same request twice does not even configure again;
- builds/<build id>/: the artifacts, where the id hashes (source identity, patch hashes,
  final .config), so two requests that end in the same config share one build;
- ccache (builds with O= under one CCACHE_BASEDIR), so a one-line change rebuilds in seconds.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..core import lock, progress
from ..core.errors import InfraError, UserError
from ..core.files import sha256_file
from ..core.log import Log
from ..core.paths import KERNEL_CONFIGS_DIR
from . import kconfig, kconfig_tree, patches, profiling
from . import source as ksource
from .acquire import Kernel, bzimage_release, kernel_entry, load_build

FORMAT_VERSION = "1"  # bump when the build recipe changes what comes out
BASE_FRAGMENT = KERNEL_CONFIGS_DIR / "base.config"
# tinyconfig's own fragments, in its order; then the lab's base; then the user's.
TREE_FRAGMENTS = ("kernel/configs/tiny-base.config", "kernel/configs/tiny.config", "arch/x86/configs/tiny.config")
ARCH = "x86_64"


class BuildError(UserError):
    """The kernel did not compile; the message names the first compiler error."""


@dataclass(frozen=True)
class Fragment:
    name: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True)
class BuildRequest:
    source: ksource.SourceSpec
    fragments: tuple[Path, ...] = ()
    patches: tuple[Path, ...] = ()
    coverage: bool = False  # gcov profiling of kernel/profiling.DIRECTORIES (its own build id)


@dataclass(frozen=True)
class Built:
    build_id: str
    directory: Path
    kernel: Kernel
    cached: bool


def read_fragments(paths: tuple[Path, ...]) -> list[Fragment]:
    fragments = []
    for path in paths:
        try:
            fragments.append(Fragment(path.name, path.read_text()))
        except OSError as exc:
            raise UserError(f"fragment {path}: {exc.strerror}") from exc
        kconfig.parse_fragment(fragments[-1].text, path.name)  # malformed lines fail now, not after a build
    return fragments


def request_fragments(request: BuildRequest) -> list[Fragment]:
    """The user's fragments, then the coverage fragment for a coverage build."""
    return read_fragments(request.fragments + ((profiling.FRAGMENT,) if request.coverage else ()))


def _profiled(coverage: bool) -> dict[str, list[str]]:
    # Only a coverage build names it: every other build keeps the key and id it had.
    return {"profiled": list(profiling.DIRECTORIES)} if coverage else {}


def request_key(identity: dict[str, str], fragments: list[Fragment], series: list[patches.Patch],
                coverage: bool = False) -> str:
    material = {
        **_profiled(coverage),
        "format": FORMAT_VERSION,
        "source": identity,
        "base": hashlib.sha256(BASE_FRAGMENT.read_bytes()).hexdigest(),  # edited base, new request
        "fragments": [f.sha256 for f in fragments],
        "patches": [p.sha256 for p in series],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:20]


def build_id(version: str, identity: dict[str, str], series: list[patches.Patch], config_text: str,
             coverage: bool = False) -> str:
    """What the artifacts depend on: the source, the patches, the final configuration and the
    directories built with gcov profiling."""
    material = {
        **_profiled(coverage),
        "format": FORMAT_VERSION,
        "source": identity,
        "patches": [p.sha256 for p in series],
        "config": hashlib.sha256(config_text.encode()).hexdigest(),
    }
    return f"{version}-{hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:12]}"


_COMPILER_ERROR = re.compile(r"^(\S+?:\d+(?::\d+)?: (?:fatal )?error: .*)$|^(make(?:\[\d+\])?: \*\*\* .*Error \d+.*)$")


def first_errors(log_text: str, limit: int = 5) -> list[str]:
    """The first compiler errors of a failed build (make's own errors only if there are none)."""
    compiler = []
    make_errors = []
    for line in log_text.splitlines():
        match = _COMPILER_ERROR.match(line)
        if match and match[1]:
            # The object directory is inside the tree; gcc quotes with ‘’ in some locales.
            compiler.append(match[1].removeprefix("../").replace("\u2018", "'").replace("\u2019", "'"))
        elif match and match[2]:
            make_errors.append(match[2])
        if len(compiler) >= limit:
            break
    return compiler or make_errors[:limit] or [line for line in log_text.splitlines() if line.strip()][-limit:]


def _env(cache: Path, work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "CCACHE_DIR": str(cache / "ccache"),
        # Paths under the work root are hashed relative to it, so any copy of a tree hits.
        "CCACHE_BASEDIR": str(work),
        "CCACHE_NOHASHDIR": "1",
        "CCACHE_MAXSIZE": env.get("CCACHE_MAXSIZE", "5G"),
        # A reproducible version string: the same sources give the same objects and image.
        "KBUILD_BUILD_TIMESTAMP": "bpf-kernel-lab",
        "KBUILD_BUILD_USER": "lab",
        "KBUILD_BUILD_HOST": "lab",
        "LC_ALL": "C",
    })
    return env


def _make(tree: Path, obj: Path, targets: list[str], env: dict[str, str], log_file: Path | None,
          extra: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["make", "-C", str(tree), f"O={obj}", f"ARCH={ARCH}", *(extra or []), *targets]
    try:
        if log_file is None:
            return subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        with log_file.open("a") as handle:
            handle.write(f"$ {' '.join(argv)}\n")
            handle.flush()
            return subprocess.run(argv, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True, check=False)
    except FileNotFoundError as exc:
        raise InfraError("make is not installed (run `make setup`)") from exc


def merged_fragments(tree: Path, user: list[Fragment]) -> tuple[kconfig.Merged, list[kconfig.Setting]]:
    """The merge of tinyconfig's fragments, the lab's base and the user's; and what to check."""
    tree_parts = [kconfig.parse_fragment((tree / name).read_text(), name) for name in TREE_FRAGMENTS if (tree / name).is_file()]
    base = kconfig.parse_fragment(BASE_FRAGMENT.read_text(), f"kernel-configs/{BASE_FRAGMENT.name}")
    mine = [kconfig.parse_fragment(f.text, f.name) for f in user]
    merged = kconfig.merge([*tree_parts, base, *mine])
    # Check the lab's and the user's wishes, each symbol once, as finally merged.
    asked = {s.symbol for part in (base, *mine) for s in part}
    return merged, [s for s in merged.settings.values() if s.symbol in asked]


def configure(tree: Path, obj: Path, user: list[Fragment], env: dict[str, str], log: Log) -> str:
    """Write obj/.config from the fragments and return it; a dropped or unknown symbol is a UserError."""
    merged, requested = merged_fragments(tree, user)
    for override in merged.overrides:
        if override.new.origin.startswith(tuple(f.name for f in user)):
            log(f"config: {override.new.origin} overrides {override.old.line()} ({override.old.origin}) with {override.new.line()}")
    obj.mkdir(parents=True, exist_ok=True)
    (obj / "lab-merged.config").write_text(merged.render())
    for targets in (["allnoconfig"], ["olddefconfig"]):
        done = _make(tree, obj, targets, {**env, "KCONFIG_ALLCONFIG": str(obj / "lab-merged.config")}, None)
        if done.returncode != 0:
            why = "; ".join((done.stderr or done.stdout).strip().splitlines()[-2:]) or f"exit {done.returncode}"
            raise UserError(f"config: make {targets[0]} failed: {why}")
    config_text = (obj / ".config").read_text()
    dropped = kconfig.check(requested, kconfig.parse_config(config_text))
    if dropped:
        index = kconfig_tree.scan(tree)
        final = kconfig.parse_config(config_text)
        unknown = [d for d in dropped if d.wanted.symbol not in index.defined and d.wanted.value != "n"]
        if unknown:
            first = unknown[0].wanted
            raise UserError(f"config: {first.symbol} ({first.origin}) is not a Kconfig symbol of this tree"
                            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
        detailed = [kconfig.Dropped(d.wanted, d.got, index.unmet(d.wanted.symbol, final)) for d in dropped]
        for extra in detailed[1:]:
            log(f"config: also dropped: {extra.describe()}")
        raise UserError(f"config: {detailed[0].describe()}" + (f" (and {len(detailed) - 1} more)" if len(detailed) > 1 else ""))
    return config_text


def _install_artifacts(tree: Path, obj: Path, config_text: str, env: dict[str, str], staging: Path,
                       build_log: Path) -> tuple[Path | None, str]:
    staging.mkdir(parents=True)
    shutil.copy2(obj / "arch" / "x86" / "boot" / "bzImage", staging / "bzImage")
    (staging / "config").write_text(config_text)
    for kept in ("System.map", "vmlinux"):  # vmlinux: gdb's symbols (`lab boot --gdb`)
        if (obj / kept).is_file():
            shutil.copy2(obj / kept, staging / kept)
    release = bzimage_release(staging / "bzImage")
    if kconfig.parse_config(config_text).get("CONFIG_MODULES") != "y":
        return None, release
    done = _make(tree, obj, ["modules_install"], env, build_log,
                 [f"INSTALL_MOD_PATH={staging / 'modroot'}", "INSTALL_MOD_STRIP=1", "DEPMOD=/bin/true"])
    if done.returncode != 0:
        raise InfraError(f"modules_install failed (log: {build_log})")
    depmod = subprocess.run(["depmod", "-b", str(staging / "modroot"), release], capture_output=True, text=True, check=False)
    if depmod.returncode != 0:
        raise InfraError(f"depmod failed for {release}: {depmod.stderr.strip()}")
    return staging / "modroot" / "lib" / "modules" / release, release


def builds_dir(cache: Path) -> Path:
    return cache / "builds"


def _remembered(remembered: Path, cache: Path) -> str | None:
    if remembered.is_file():
        known = remembered.read_text().strip()
        # A damaged entry (a truncated kernel.json, a lost bzImage) is built again, not loaded.
        if known and not known.startswith(".") and kernel_entry(builds_dir(cache) / known)[0] is not None:
            return known
    return None


@contextmanager
def _request_lock(path: Path) -> Iterator[None]:
    """One build per request at a time: a second identical request waits, then finds it cached."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_request(request: BuildRequest) -> None:
    """Read the fragments and patches now (UserError naming the bad one), before any source is
    fetched or built: `lab validate` builds twice, and the second build must not be the one to fail."""
    request_fragments(request)
    patches.check_series(list(request.patches))


def series_for(request: BuildRequest, source: ksource.SourceTree, log: Log) -> list[patches.Patch]:
    """The request's patches for this source: a series directory's port for its version, if it has one."""
    for path in request.patches:
        if path.is_dir() and (port := patches.port_for(path, source.version)) is not None:
            log(f"build: {path.name}: the port {port.relative_to(path)} for {source.version}")
    return patches.load_series(list(request.patches), source.version)


def build(request: BuildRequest, cache: Path, log: Log, jobs: int | None = None,
          source: ksource.SourceTree | None = None) -> Built:
    """The kernel of the request, built or found in the cache. `source` is request.source already
    acquired, for a caller that builds one source twice (`lab validate`: each acquire of a Debian
    source reads the apt lists again, seconds each)."""
    fragments = request_fragments(request)
    patches.check_series(list(request.patches))  # a bad patch fails before the source is fetched
    source = source or ksource.acquire(request.source, cache, log)
    series = series_for(request, source, log)
    key = request_key(source.identity, fragments, series, request.coverage)
    remembered = builds_dir(cache) / "requests" / key
    work = cache / "work" / key
    with _request_lock(cache / "work" / f"{key}.lock"):
        if known := _remembered(remembered, cache):
            log(f"build: build:{known} (cached, same request)")
            return Built(known, builds_dir(cache) / known, load_build(known, cache), True)
        try:
            ident = _configure_and_compile(source, fragments, series, work, cache, jobs, log, request.coverage)
        finally:
            shutil.rmtree(work, ignore_errors=True)  # logs are kept elsewhere; ccache keeps what a rebuild needs
        remembered.parent.mkdir(parents=True, exist_ok=True)
        written = remembered.with_name(f".{remembered.name}.tmp")
        written.write_text(ident + "\n")
        os.replace(written, remembered)  # a killed lab leaves the old answer or the new one, never half
    return Built(ident, builds_dir(cache) / ident, load_build(ident, cache), False)


def _configure_and_compile(source: ksource.SourceTree, fragments: list[Fragment], series: list[patches.Patch],
                           work: Path, cache: Path, jobs: int | None, log: Log, coverage: bool = False) -> str:
    """The build id, built if it was not yet.

    Every build works in a linked copy with its object directory inside it: Kbuild then
    uses relative paths (srctree "..") in every compiler argument, so ccache hits across
    copies, and the cached tree (or the user's) is never written.
    """
    tree = work / "src"
    patches.linked_copy(source.root, tree)
    if series:
        log(f"build: applying {len(series)} patch(es) to a copy of {source.version}")
        patches.apply_series(tree, series)
    if coverage:
        profiling.profile(tree, log)
    obj = tree / profiling.OBJ
    env = _env(cache, cache / "work")
    started = time.monotonic()
    config_text = configure(tree, obj, fragments, env, log)
    configured = time.monotonic()
    ident = build_id(source.version, source.identity, series, config_text, coverage)
    final_dir = builds_dir(cache) / ident
    cached, problem = kernel_entry(final_dir)
    if cached is not None:
        log(f"build: build:{ident} (cached, same source, patches and config)")
    else:
        if problem != "missing":
            log(f"warning: cached build {final_dir} {problem}; building it again")
        _compile(tree, obj, config_text, env, ident, final_dir, source, fragments, series, jobs or os.cpu_count() or 1,
                 configured - started, log)
    return ident


def _ccache_stats(env: dict[str, str]) -> dict[str, int]:
    done = subprocess.run(["ccache", "--print-stats"], env=env, capture_output=True, text=True, check=False)
    stats = dict(line.split("\t", 1) for line in done.stdout.splitlines() if "\t" in line)
    return {k: int(v) for k, v in stats.items() if k in ("direct_cache_hit", "preprocessed_cache_hit", "cache_miss") and v.isdigit()}


# kbuild's short lines for an object it compiles: "  CC      kernel/bpf/syscall.o".
_OBJECT_LINE = re.compile(r"^\s+(?:CC|AS)\s+\S+\.o$")


def is_object_line(line: str) -> bool:
    return _OBJECT_LINE.match(line) is not None


def expected_objects(builds: Path, version: str) -> int | None:
    """About how many objects a build of this version compiles: the newest earlier build's count."""
    counts = []
    for recorded in builds.glob("*/build.json"):
        try:
            data = json.loads(recorded.read_text())
        except (OSError, ValueError):
            continue
        if data.get("version") == version and isinstance(data.get("objects"), int):
            counts.append((recorded.stat().st_mtime, data["objects"]))
    return max(counts)[1] if counts else None


def _compile(tree: Path, obj: Path, config_text: str, env: dict[str, str], ident: str, final_dir: Path,
             source: ksource.SourceTree, fragments: list[Fragment], series: list[patches.Patch], jobs: int,
             config_seconds: float, log: Log) -> None:
    if shutil.which("ccache") is None:
        raise InfraError("ccache is not installed (run `make setup`)")
    build_log = obj / "build.log"
    build_log.write_text("")
    targets = ["bzImage"] + (["modules"] if kconfig.parse_config(config_text).get("CONFIG_MODULES") == "y" else [])
    log(f"build: make -j{jobs} {' '.join(targets)} for build:{ident} (log: {build_log})")
    subprocess.run(["ccache", "--zero-stats"], env=env, capture_output=True, check=False)
    started = time.monotonic()
    expected = expected_objects(final_dir.parent, source.version)
    made = progress.counted(build_log, is_object_line, lambda: expected, "objects", approximate=True)
    with progress.showing(f"build:{ident}", made):
        done = _make(tree, obj, [f"-j{jobs}", *targets], env, build_log, ["CC=ccache gcc"])
    seconds = time.monotonic() - started
    if done.returncode != 0:
        kept = final_dir.parent / "failed" / f"{ident}.log"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(build_log, kept)
        errors = first_errors(build_log.read_text(errors="replace"))
        for line in errors[1:]:
            log(f"build: {line}")
        raise BuildError(f"build failed: {errors[0]} (log: {kept})")
    # Two requests that end in the same config compile side by side; their artifacts go into
    # builds/<id> one at a time, the second finding the first one's there.
    with lock.locked(final_dir, log, f"build:{ident}"):
        if kernel_entry(final_dir)[0] is not None:
            log(f"build: build:{ident} was finished meanwhile by another lab")
            return
        release = _store(tree, obj, config_text, env, ident, final_dir, source, fragments, series, jobs,
                         config_seconds, seconds, build_log)
    log(f"build: build:{ident} ({release}) in {seconds:.0f} s")


def _store(tree: Path, obj: Path, config_text: str, env: dict[str, str], ident: str, final_dir: Path,
           source: ksource.SourceTree, fragments: list[Fragment], series: list[patches.Patch], jobs: int,
           config_seconds: float, seconds: float, build_log: Path) -> str:
    """Install the artifacts into a staging directory, then rename it to builds/<id>, replacing a
    damaged entry; the kernel's release. Under the entry's lock: the staging name is this build's alone."""
    staging = final_dir.parent / f".staging-{ident}"
    shutil.rmtree(staging, ignore_errors=True)
    modules, release = _install_artifacts(tree, obj, config_text, env, staging, build_log)
    shutil.copy2(build_log, staging / "build.log")
    profiled = profiling.keep_material(tree, obj, staging) > 0
    identity = {
        "origin": "build",
        "spec": f"build:{ident}",
        "build_id": ident,
        "source": json.dumps(source.identity, sort_keys=True),
        "patches": json.dumps([p.to_json() for p in series]),
        "fragments": json.dumps([{"name": f.name, "sha256": f.sha256} for f in fragments]),
        "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
        **({"coverage": ",".join(profiling.DIRECTORIES)} if profiled else {}),
    }

    def final(path: Path | None) -> Path | None:
        return final_dir / path.relative_to(staging) if path else None

    kernel = Kernel(final_dir / "bzImage", release, final_dir / "config", final(modules), identity)
    (staging / "kernel.json").write_text(json.dumps(kernel.to_json(), indent=2) + "\n")
    (staging / "build.json").write_text(json.dumps({
        "build_id": ident, "version": source.version, "release": release, "jobs": jobs,
        "config_seconds": round(config_seconds, 1), "build_seconds": round(seconds, 1),
        "image_sha256": sha256_file(staging / "bzImage"), "ccache": _ccache_stats(env),
        "objects": sum(1 for line in build_log.read_text(errors="replace").splitlines() if is_object_line(line)),
    }, indent=2) + "\n")
    try:
        lock.install(staging, final_dir)  # atomic: a half-built entry is never taken for a cached one
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return release
