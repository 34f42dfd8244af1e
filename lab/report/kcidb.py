"""`lab kcidb RUN... --origin NAME`: runs as one KCIDB I/O document, KernelCI's common reporting
format (https://docs.kernelci.org/kcidb/), valid by the kcidb-io package's own schema.

Per run, three linked objects, then one test per test record:
- checkout: what was built or installed. A Debian kernel package is its package and version; a
  lab build is its source (package, tarball or tree digest) plus the patch series, with KCIDB's
  `patchset_hash` (sha256 over each patch's newline-terminated sha256, in order; "" for none).
- build: the kernel image as it ran (its build id or package, config sha256; a lab build's
  build.log from the cache as log_url).
- tests: path `bpf_kernel_lab.<suite>.<module>.<test>[.<parameters>]`, status mapped from the
  lab's outcome (passed PASS, failed FAIL, error ERROR, skipped SKIP), its duration, the suite's
  log, console.log and dmesg.txt as output files, and the kernel's recorded behaviour in `misc`.
  Each suite is also a test of its own (`bpf_kernel_lab.<suite>`): PASS, FAIL, ERROR when it
  did not finish because of the kernel (crash, timeout), MISS when the host failed it; and so is
  the boot (`bpf_kernel_lab.boot`): PASS once the kernel served SSH, FAIL when it did not get there.

Every id is derived from what it names (a run's id, a build id, a source and a series), never
from when the document was written, so submitting the same runs twice changes nothing.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcidb_io.schema import V5_3 as SCHEMA  # type: ignore[import-untyped]

from ..core.errors import UserError
from ..core.outcome import Outcome
from ..kernel.build import builds_dir
from ..results import layout
from ..results.load import LoadedRun, load_run
from ..results.model import ERROR, FAILED, PASSED, SKIPPED, SuiteResult, TestRecord

ROOT = "bpf_kernel_lab"
STATUS = {PASSED: "PASS", FAILED: "FAIL", ERROR: "ERROR", SKIPPED: "SKIP"}
ORIGIN = re.compile(r"^[a-z0-9_]+$")
EXCERPT_LIMIT = 16384  # KCIDB's maxLength for log_excerpt
HOST_FAULTS = {Outcome.INFRA_ERROR.value, Outcome.INTERRUPTED.value}


def check_origin(origin: str) -> str:
    if not ORIGIN.match(origin):
        raise UserError(f"{origin!r}: KCIDB origins are lowercase letters, digits and _ only")
    return origin


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _decoded(value: object, default: object) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return value if value is not None else default


def patchset_hash(series: list[dict[str, str]]) -> str:
    return hashlib.sha256("".join(f"{p['sha256']}\n" for p in series).encode()).hexdigest() if series else ""


def _segment(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "_"


def test_path(suite: str, name: str) -> str:
    """`test_maps_hash.py::test_x[hash-4]` of maps -> bpf_kernel_lab.maps.test_maps_hash.test_x.hash-4"""
    module, _, rest = name.partition("::")
    function, _, parameters = rest.partition("[")
    parts = [ROOT, suite, module.removesuffix(".py"), *function.split("::"), parameters.removesuffix("]")]
    return ".".join(_segment(part) for part in parts if part)


def _url(path: Path) -> str:
    return path.resolve().as_uri()


def _files(directory: Path, names: Iterable[str]) -> list[dict[str, str]]:
    return [{"name": name, "url": _url(directory / name)} for name in names if (directory / name).is_file()]


def _checkout(origin: str, kernel: dict[str, Any], started: str | None) -> dict[str, Any]:
    if kernel.get("origin") == "build":
        checkout = _source_checkout(origin, _decoded(kernel.get("source"), {}), _decoded(kernel.get("patches"), []))
    elif kernel.get("origin") == "debian":
        package = {k: kernel.get(k) for k in ("package", "version")}
        checkout = {"id": f"{origin}:{_key('debian', package)}", "origin": origin, "valid": True, "tree_name": "debian",
                    "patchset_hash": "", "comment": f"{package['package']} {package['version']} (Debian's build)",
                    "misc": {"debian_package": package}}
    else:  # a kernel image given by path: its source is unknown
        checkout = {"id": f"{origin}:{_key('image', kernel.get('image_sha256'))}", "origin": origin,
                    "comment": f"a kernel image given by path (sha256 {kernel.get('image_sha256', 'unknown')})",
                    "misc": {"image_sha256": kernel.get("image_sha256")}}
    if started:
        checkout["start_time"] = started
    return checkout


def _build(origin: str, kernel: dict[str, Any], checkout_id: str, cache: Path) -> dict[str, Any]:
    build_key = kernel.get("build_id") or _key("kernel", kernel.get("package"), kernel.get("version"),
                                               kernel.get("image_sha256"), kernel.get("config_sha256"))
    build: dict[str, Any] = {
        "id": f"{origin}:{build_key}", "origin": origin, "checkout_id": checkout_id, "architecture": "x86_64",
        "status": "PASS",  # built: Debian's package, or a lab build that finished (a run needs one)
        "comment": f"kernel {kernel.get('release', 'unknown')}",
        "misc": {k: kernel[k] for k in ("origin", "spec", "build_id", "package", "version", "config_sha256", "release")
                 if kernel.get(k)},
    }
    if kernel.get("origin") == "build":
        fragments = _decoded(kernel.get("fragments"), [])
        build["config_name"] = "lab fragments" + (f" + {', '.join(f['name'] for f in fragments)}" if fragments else "")
        built = builds_dir(cache) / str(kernel.get("build_id"))
        if (built / "build.log").is_file():
            build["log_url"] = _url(built / "build.log")
        build["output_files"] = _files(built, ["bzImage", "config", "System.map"])
    elif kernel.get("origin") == "debian":
        build["config_name"] = "Debian cloud-amd64"
    return build


def _object(metadata: dict[str, object], key: str) -> dict[str, Any]:
    value = metadata.get(key)
    return value if isinstance(value, dict) else {}


def _environment(run: LoadedRun) -> dict[str, Any]:
    metadata = run.metadata
    accel, image, cpus = _object(metadata, "accelerator"), _object(metadata, "image"), _object(metadata, "cpus")
    target = metadata.get("target") or _object(metadata, "request").get("target")
    where = f"ssh target {target}" if target else f"QEMU {metadata.get('qemu_version', '?')} ({accel.get('name', '?')})"
    return {"comment": where, "misc": {"accelerator": accel.get("name"), "cpus": cpus.get("given"),
                                       "image_digest": image.get("digest")}}


KERNEL_FAULTS = {Outcome.BOOT_FAILED.value, Outcome.KERNEL_CRASHED.value, Outcome.TIMED_OUT.value}


def _boot_test(origin: str, run: LoadedRun, build_id: str) -> dict[str, Any]:
    """The boot as a test of its own, as KernelCI records one: PASS once the kernel served SSH (or a
    suite ran: a --target machine is not booted by the lab), FAIL when the kernel did not get there,
    MISS when the host failed first."""
    seconds = run.metadata.get("boot_to_ssh_seconds")
    if isinstance(seconds, (int, float)) or run.suites:
        status = "PASS"
    elif run.outcome in KERNEL_FAULTS:
        status = "FAIL"
    else:
        status = "MISS" if run.outcome in HOST_FAULTS else "ERROR"
    test: dict[str, Any] = {"origin": origin, "build_id": build_id, "id": f"{origin}:{run.run_id}/boot",
                            "path": f"{ROOT}.boot", "status": status, "environment": _environment(run),
                            "output_files": _files(run.directory, ["console.log", "qemu-cmdline.txt"]),
                            "misc": {"run_id": run.run_id, "outcome": run.outcome}}
    if isinstance(seconds, (int, float)):
        test["duration"] = float(seconds)
    if run.metadata.get("started"):
        test["start_time"] = run.metadata["started"]
    if status != "PASS" and run.reason:
        test["log_excerpt"] = run.reason[:EXCERPT_LIMIT]
    return test


def _suite_status(suite: SuiteResult, run: LoadedRun) -> str:
    if suite.ok:
        return "PASS"
    if suite.error:
        return "MISS" if run.outcome in HOST_FAULTS else "ERROR"
    return "FAIL" if suite.count(FAILED) else "ERROR"


def _test(origin: str, run: LoadedRun, build_id: str, suite: SuiteResult, record: TestRecord | None) -> dict[str, Any]:
    outputs = _files(run.directory, [layout.suite_log(run.directory, suite.name).name, "console.log", "dmesg.txt",
                                     layout.suite_junit(run.directory, suite.name).name])
    common: dict[str, Any] = {"origin": origin, "build_id": build_id, "environment": _environment(run),
                              "output_files": outputs}
    if run.metadata.get("started"):
        common["start_time"] = run.metadata["started"]
    if record is None:
        test = {**common, "id": f"{origin}:{run.run_id}/{suite.name}", "path": f"{ROOT}.{_segment(suite.name)}",
                "status": _suite_status(suite, run), "duration": round(suite.wall_seconds, 3),
                "misc": {"run_id": run.run_id, "properties": suite.properties, "pytest_rc": suite.pytest_rc}}
        if suite.error:
            test["log_excerpt"] = suite.error[:EXCERPT_LIMIT]
        return test
    test = {**common, "id": f"{origin}:{run.run_id}/{suite.name}/{record.name}", "path": test_path(suite.name, record.name),
            "status": STATUS[record.outcome], "duration": round(record.duration, 3),
            "misc": {"run_id": run.run_id, "name": record.name, "properties": record.properties}}
    excerpt = record.message or record.skip_reason
    if excerpt:
        test["log_excerpt"] = excerpt[-EXCERPT_LIMIT:]
    return test


@dataclass
class Loaded:
    """What `lab kcidb` read: runs, and the versions of `lab validate` directories (a version whose
    series did not apply or did not build has no run, yet it has a checkout and a build)."""

    runs: list[LoadedRun] = field(default_factory=list)
    versions: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)


def _index(path: Path, name: str, key: str) -> list[dict[str, Any]]:
    try:
        entries = json.loads((path / name).read_text())[key]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise TypeError(f"{key} is not a list of objects")
        return entries
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path / name}: not a {name} the lab wrote ({exc})") from None


def load(args: Iterable[str], results_root: Path) -> Loaded:
    """Run directories (or ids), `lab validate` and `lab matrix` directories: everything in them."""
    loaded = Loaded()
    for arg in args:
        path = Path(arg)
        if (path / "validate.json").is_file():
            for version in _index(path, "validate.json", "versions"):
                loaded.versions.append((path, version))
                loaded.runs += [load_run(str(path / run["run"])) for run in (version.get("runs") or {}).values()
                                if isinstance(run, dict) and run.get("run")]
        elif (path / "matrix.json").is_file():
            loaded.runs += [load_run(str(path / entry["run"])) for entry in _index(path, "matrix.json", "kernels")
                            if entry.get("run")]
        else:
            loaded.runs.append(load_run(arg, results_root))
    return loaded


def _source_checkout(origin: str, source: dict[str, Any], series: list[dict[str, str]]) -> dict[str, Any]:
    what = (f"{source.get('package')} {source.get('version')}" if source.get("origin") == "debian"
            else str(source.get("spec", "a source tree")))
    checkout = {"id": f"{origin}:{_key('source', source, series)}", "origin": origin, "valid": True,
                "patchset_hash": patchset_hash(series),
                "comment": what + (f" + {len(series)} patch(es): {', '.join(p['name'] for p in series)}" if series else ""),
                "misc": {"source": source, "patches": series}}
    if source.get("origin") == "debian":
        checkout["tree_name"] = "debian"
    return checkout


def _version_objects(origin: str, directory: Path, version: dict[str, Any],
                     cache: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A validated version's base and patched checkouts and builds, as `lab validate` recorded them."""
    source = version.get("resolved") or {"spec": version.get("source")}
    applies = version.get("applies") or {}
    checkouts, builds = [], []
    for role, series in (("base", []), ("patched", version.get("series") or [])):
        checkout = _source_checkout(origin, source, series)
        if role == "patched" and applies.get("status") == "does not apply":
            checkout["valid"] = False
            checkout["log_excerpt"] = str(applies.get("failure") or "the series does not apply")[:EXCERPT_LIMIT]
        if role == "patched" and version.get("port"):
            checkout["misc"]["port"] = version["port"]
        checkouts.append(checkout)
        built = (version.get("builds") or {}).get(role)
        if not isinstance(built, dict):
            continue
        build: dict[str, Any] = {"id": f"{origin}:{built.get('build_id') or _key('failed build', checkout['id'])}",
                                 "origin": origin, "checkout_id": checkout["id"], "architecture": "x86_64",
                                 "status": "FAIL" if built.get("error") else "PASS",
                                 "comment": f"{role} build of {version.get('source')}"}
        if built.get("seconds") is not None and not built.get("cached"):
            build["duration"] = float(built["seconds"])
        if built.get("error"):
            build["log_excerpt"] = str(built["error"])[:EXCERPT_LIMIT]
        if built.get("log") and (directory / built["log"]).is_file():
            build["log_url"] = _url(directory / built["log"])
        elif built.get("build_id") and (builds_dir(cache) / built["build_id"] / "build.log").is_file():
            build["log_url"] = _url(builds_dir(cache) / built["build_id"] / "build.log")
        builds.append(build)
    return checkouts, builds


def document(loaded: Loaded, origin: str, cache: Path) -> dict[str, Any]:
    checkouts: dict[str, dict[str, Any]] = {}
    builds: dict[str, dict[str, Any]] = {}
    tests: dict[str, dict[str, Any]] = {}
    # A validation's own record first: it knows which series did not apply and which build failed.
    for directory, version in loaded.versions:
        version_checkouts, version_builds = _version_objects(origin, directory, version, cache)
        for checkout in version_checkouts:
            checkouts.setdefault(checkout["id"], checkout)
        for build in version_builds:
            builds.setdefault(build["id"], build)
    for run in loaded.runs:
        kernel = run.kernel
        checkout = _checkout(origin, kernel, str(run.metadata["started"]) if run.metadata.get("started") else None)
        checkouts.setdefault(checkout["id"], checkout)
        build = _build(origin, kernel, checkout["id"], cache)
        builds.setdefault(build["id"], build)
        boot = _boot_test(origin, run, build["id"])
        tests[boot["id"]] = boot
        for suite in run.suites:
            for record in [None, *suite.records]:
                test = _test(origin, run, build["id"], suite, record)
                tests[test["id"]] = test
    return {"version": {"major": SCHEMA.major, "minor": SCHEMA.minor}, "checkouts": list(checkouts.values()),
            "builds": list(builds.values()), "tests": list(tests.values())}


def validated(data: dict[str, Any]) -> dict[str, Any]:
    """The document as kcidb-io's schema accepts it; one it refuses is the lab's own bug."""
    import jsonschema  # type: ignore[import-untyped]  # kcidb-io's own dependency

    try:
        SCHEMA.validate(data)
    except jsonschema.exceptions.ValidationError as exc:
        raise AssertionError(f"the lab wrote a KCIDB document its schema refuses: {exc.message} "
                             f"at {'/'.join(map(str, exc.absolute_path))}") from exc
    return data
