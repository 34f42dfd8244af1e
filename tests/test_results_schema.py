"""The results directory's formats (README, "Results"): metadata.json, results.json and junit.xml.

The schemas are written down here and checked by a small checker (jsonschema is not a dependency)
on runs made by guest_run.execute with the boot faked, on real run directories when there are any
(the runs the e2e boots of the same session made, or LAB_SCHEMA_RUNS), and against the README, so the three cannot drift apart.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from e2ehelpers import real_runs
from test_lab_pipeline import World, failed_suite, timed_out_suite, world  # noqa: F401

from lab.guest import image
from lab.results import junit
from lab.run import guest as guest_run
from lab.report import show as runreport
from lab.kernel.acquire import Kernel
from lab.kernel.spec import DebianSpec
from lab.guest.keys import LabKeys
from lab.vm.machine import BootFailed
from lab.core.outcome import Outcome
from lab.results.load import load_run
from lab.run.lifecycle import RunOutcome
from lab.guest.assets import Prepared
from lab.run.request import RunRequest

README = Path(__file__).resolve().parent.parent / "README.md"
# Real runs: LAB_SCHEMA_RUNS (a results root) if set, else the runs this pytest session's own
# e2e boots made (test_e2e_boot runs Debian 6.1 and 6.12 with all three suites).


# --- the checker ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Obj:
    required: dict[str, object]
    optional: dict[str, object] = field(default_factory=dict)
    values: object = None  # the schema of keys listed in neither; None: no other keys allowed


@dataclass(frozen=True)
class Arr:
    items: object


@dataclass(frozen=True)
class OneOf:
    choices: tuple[object, ...]  # literal values


@dataclass(frozen=True)
class Match:
    regex: str


@dataclass(frozen=True)
class Either:
    schemas: tuple[object, ...]


def check(value: object, schema: object, where: str = "$") -> list[str]:
    """Every way value breaks schema, as 'path: why'. A Python type is a schema; float admits int, not bool."""
    if isinstance(schema, Either):
        found = [check(value, s, where) for s in schema.schemas]
        return [] if any(not f for f in found) else [f"{where}: none of {len(found)} forms fits: {found}"]
    if isinstance(schema, OneOf):
        return [] if value in schema.choices else [f"{where}: {value!r} is not one of {schema.choices}"]
    if isinstance(schema, Match):
        ok = isinstance(value, str) and re.fullmatch(schema.regex, value)
        return [] if ok else [f"{where}: {value!r} does not match {schema.regex}"]
    if isinstance(schema, Arr):
        if not isinstance(value, list):
            return [f"{where}: expected an array, got {type(value).__name__}"]
        return [e for i, item in enumerate(value) for e in check(item, schema.items, f"{where}[{i}]")]
    if isinstance(schema, Obj):
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        errors = [f"{where}: missing {key!r}" for key in schema.required if key not in value]
        for key, item in value.items():
            sub = schema.required.get(key, schema.optional.get(key, schema.values))
            if sub is None:
                errors.append(f"{where}: unexpected key {key!r}")
            else:
                errors += check(item, sub, f"{where}.{key}")
        return errors
    if schema is None or schema is type(None):
        return [] if value is None else [f"{where}: expected null, got {value!r}"]
    assert isinstance(schema, type), schema
    if schema is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif schema is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, schema)
    return [] if ok else [f"{where}: expected {schema.__name__}, got {value!r}"]


def keys_of(schema: object) -> set[str]:
    """Every key a schema names, at any depth."""
    if isinstance(schema, Obj):
        named = {**schema.required, **schema.optional}
        return set(named) | {k for s in named.values() for k in keys_of(s)} | keys_of(schema.values)
    if isinstance(schema, Arr):
        return keys_of(schema.items)
    if isinstance(schema, Either):
        return {k for s in schema.schemas for k in keys_of(s)}
    return set()


# --- the schemas --------------------------------------------------------------------------------------

RUN_ID = r"\d{8}-\d{6}-[A-Za-z0-9.-]+-[0-9a-f]{4}"
UTC_TIME = Match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
SHA256 = Match(r"[0-9a-f]{64}")
OUTCOMES = tuple(o.value for o in Outcome)
STRINGS = Obj({}, values=str)

METADATA = Obj(
    required={
        "run_id": Match(RUN_ID),
        "started": UTC_TIME,
        "request": Obj({"kernel": str, "suites": Arr(str), "accel": OneOf(("auto", "kvm", "tcg"))}),
        "host": Obj({"name": str, "kernel": str, "python": str}),
        "stages": Obj({}, values=Obj({"status": OneOf(("running", "done", "failed"))},
                                     {"seconds": float, "error": str})),
        "outcome": Either((OneOf(OUTCOMES), None)),  # null until the run ends
        # Identity: origin debian (package, version), build (build_id; source, patches and fragments
        # as JSON text) or path (image_sha256); a path kernel without a config has no config_sha256.
        "kernel": Obj({"release": str, "image": str, "origin": OneOf(("debian", "build", "path")), "spec": str},
                      {"package": str, "version": str, "build_id": str, "source": str, "patches": str,
                       "fragments": str, "image_sha256": SHA256, "config_sha256": SHA256}),
        "image": Obj({"path": str, "digest": SHA256}),
        "prepare_seconds": Obj({}, values=float),
        "lab": Obj({"commit": Either((Match(r"[0-9a-f]{40}"), None)), "dirty": bool}),
        "reproducer": OneOf(("reproducer.sh",)),
    },
    optional={  # each written when its stage is reached
        "qemu_version": str,
        "accelerator": Obj({"name": OneOf(("kvm", "tcg")), "reason": str, "probed": bool}),
        # the CPUs the kernel brought up, once it is up: QEMU's -smp, sysfs's possible and online lists
        "cpus": Obj({"given": Either((int, None)), "possible": Either((int, None)), "online": Either((int, None))}),
        "warnings": Arr(str),
        "timeouts": Obj({"boot": float, "boot_silence": float, "ssh": float, "suite": float, "command": float}),
        "boot_to_ssh_seconds": float,
        "ssh_port": int,
        "bytecode": Obj({"restored": bool}, {"kept": bool}),
        "suites_at_once": int,  # how many suites the target's runner ran side by side
        # --coverage: the run's figures in one line and where its report is, or why there are none
        "coverage": Obj({}, {"summary": str, "report": str, "error": str}),
        "boot": Obj({"mode": OneOf(("cold", "restored")), "snapshot": Either((str, None))},
                    {"seconds": float, "saved": bool, "save_seconds": float, "warning": str}),
        "reason": str,
        "console_excerpt": str,
        "finished": UTC_TIME,
        # `lab lava-run` only: the job it ran, and what lava-run said
        "lava": Obj({"job": str, "metadata": STRINGS},
                    {"exit_status": Either((int, None)), "seconds": float,
                     "job_result": Either((Obj({"case": str, "definition": str, "result": str}, values=object), None))}),
    },
)
IDENTITY_OF = {  # what each origin must say about the kernel
    "debian": {"package", "version", "config_sha256"},
    "build": {"build_id", "source", "patches", "fragments", "config_sha256"},
    "path": {"image_sha256"},
}
ADDED_WITH_THE_REPRODUCER = ("lab", "reproducer")  # runs written before them lack them

SUITE_SUMMARY = Obj({"suite": str, "passed": int, "failed": int, "skipped": int, "errors": int, "wall_seconds": float,
                     "pytest_rc": Either((int, None)), "error": str, "properties": STRINGS})
TEST = Obj({"suite": str, "name": str, "outcome": OneOf(("passed", "failed", "skipped", "error")), "duration": float,
            "message": str, "skip_reason": str, "properties": STRINGS})
RESULTS = Obj({"run_id": Match(RUN_ID), "suites": Arr(SUITE_SUMMARY), "tests": Arr(TEST)})

JUNIT_COUNTS = ("tests", "failures", "errors", "skipped")


# --- checking one run directory -----------------------------------------------------------------------


def check_run(directory: Path) -> list[str]:
    """Every way a run directory breaks the documented formats, or agrees with itself only in part."""
    metadata = json.loads((directory / "metadata.json").read_text())
    results = json.loads((directory / "results.json").read_text())
    schema = METADATA
    if not (directory / "reproducer.sh").exists():  # written before reproducer.sh existed
        schema = Obj({k: v for k, v in METADATA.required.items() if k not in ADDED_WITH_THE_REPRODUCER},
                     {**METADATA.optional, **{k: METADATA.required[k] for k in ADDED_WITH_THE_REPRODUCER}})
    errors = check(metadata, schema, "metadata") + check(results, RESULTS, "results")
    if errors:
        return errors
    kernel = metadata["kernel"]
    if missing := IDENTITY_OF[kernel["origin"]] - set(kernel):
        errors.append(f"a {kernel['origin']} kernel's identity lacks {sorted(missing)}")
    if not metadata["run_id"] == results["run_id"] == directory.name:
        errors.append(f"run ids differ: {metadata['run_id']}, {results['run_id']}, {directory.name}")
    if metadata["outcome"] is not None and not {"reason", "finished"} <= set(metadata):
        errors.append("a finished run has no reason or finished time")
    ran = [s["suite"] for s in results["suites"]]
    if ran != metadata["request"]["suites"][: len(ran)]:
        errors.append(f"suites {ran} are not the requested {metadata['request']['suites']} in order")
    for summary in results["suites"]:
        tests = [t for t in results["tests"] if t["suite"] == summary["suite"]]
        counted = {key: sum(t["outcome"] == outcome for t in tests) for key, outcome in
                   (("passed", "passed"), ("failed", "failed"), ("skipped", "skipped"), ("errors", "error"))}
        if counted != {key: summary[key] for key in counted}:
            errors.append(f"suite {summary['suite']}: counts {summary} but tests say {counted}")
    if "reproducer" in metadata:
        errors += check_reproducer(directory / metadata["reproducer"])
    written_since_junit_xml = (directory / "reproducer.sh").exists()
    if (directory / "junit.xml").exists() or (ran and written_since_junit_xml):
        errors += check_junit(directory / "junit.xml", results)
    return errors


def check_reproducer(script: Path) -> list[str]:
    if not script.is_file() or not os.access(script, os.X_OK):
        return [f"{script.name}: missing or not executable"]
    lines = script.read_text().splitlines()
    errors = [] if lines[:1] == ["#!/bin/sh"] and "set -eu" in lines else [f"{script.name}: no #!/bin/sh and set -eu"]
    if not any(re.search(r'^exec "\$@" (run|lava-run) .* --results "\$results"$', line) for line in lines):
        errors.append(f"{script.name}: no `lab run|lava-run ... --results` line")
    return errors


def check_junit(path: Path, results: dict) -> list[str]:
    if not path.is_file():
        return ["junit.xml: missing although suites ran"]
    root = ET.parse(path).getroot()
    errors = [] if root.tag == "testsuites" else [f"junit.xml: root is <{root.tag}>"]

    def counts(element: ET.Element, where: str) -> dict[str, int]:
        found = {}
        for name in JUNIT_COUNTS:
            value = element.get(name)
            if value is None or not value.isdigit():
                errors.append(f"{where}: {name}={value!r} is not a count")
            found[name] = int(value) if value and value.isdigit() else 0
        try:
            float(element.get("time") or "")
        except ValueError:
            errors.append(f"{where}: time={element.get('time')!r} is not a number")
        return found

    suites = [child for child in root if child.tag == "testsuite"]
    if len(suites) != len(list(root)):
        errors.append("junit.xml: the root holds something other than <testsuite>")
    names = [s.get("name") for s in suites]
    if names != [s["suite"] for s in results["suites"]]:
        errors.append(f"junit.xml: suites {names}, results.json: {[s['suite'] for s in results['suites']]}")
    totals = dict.fromkeys(JUNIT_COUNTS, 0)
    for suite in suites:
        own = counts(suite, f"junit.xml {suite.get('name')}")
        totals = {k: totals[k] + own[k] for k in JUNIT_COUNTS}
        cases = suite.findall("testcase")
        recorded = [t for t in results["tests"] if t["suite"] == suite.get("name")]
        if len(cases) != len(recorded) or own["tests"] != len(cases):
            errors.append(f"junit.xml {suite.get('name')}: {len(cases)} testcases, tests={own['tests']}, "
                          f"results.json: {len(recorded)}")
        errors += [f"junit.xml {suite.get('name')}: a testcase without classname and name"
                   for case in cases if not case.get("name") or case.get("classname") is None]
    if counts(root, "junit.xml root") != totals:
        errors.append(f"junit.xml: root totals are not the sum of the suites {totals}")
    return errors


# --- on faked runs --------------------------------------------------------------------------------------

DEBIAN_IDENTITY = {"origin": "debian", "spec": "debian:6.1", "package": "linux-image-6.1.0-28-cloud-amd64-unsigned",
                   "version": "6.1.119-1", "config_sha256": "c" * 64}


def execute(world: World, suites: tuple[str, ...] = ("maps", "dump", "pin")) -> RunOutcome:
    """World.execute with a kernel identity as lab/kernel/acquire.py records one (World's is a stub)."""
    kernel = Kernel(world.tmp_path / "vmlinuz", "6.1.0-28-cloud-amd64", None, None, DEBIAN_IDENTITY)
    keys = LabKeys(world.tmp_path / "c", "ssh-ed25519 AAAA c", world.tmp_path / "h", "ssh-ed25519 BBBB")
    prepared = Prepared(kernel, image.Image(world.tmp_path / "rootfs.ext4", "ab" * 32),
                                 world.tmp_path / "initrd", keys, {"kernel": 0.1})
    request = RunRequest(DebianSpec("6.1"), "debian:6.1", list(suites), "auto", world.tmp_path / "results")
    return guest_run.execute(request, prepared, world.tmp_path / "cache", world.logged.append, world.reported.append)


def test_the_checker_catches_what_it_should() -> None:
    """A schema check that passes everything guards nothing."""
    assert check({"a": 1}, Obj({"a": int})) == []
    assert check({"a": True}, Obj({"a": int})) != []  # bool is not a count
    assert check({"a": 1, "b": 2}, Obj({"a": int})) != []  # unknown keys are errors
    assert check({}, Obj({"a": int})) != []
    assert check({"x": "1"}, Obj({}, values=str)) == [] and check({"x": 1}, Obj({}, values=str)) != []
    assert check("maybe", Either((OneOf(("yes",)), None))) != [] and check(None, Either((OneOf(("yes",)), None))) == []
    assert check(["a", 1], Arr(str)) == ["$[1]: expected str, got 1"]


def test_a_passed_run(world: World) -> None:  # noqa: F811
    directory = execute(world).record.directory
    assert check_run(directory) == []
    metadata = json.loads((directory / "metadata.json").read_text())
    # A passed run reached every stage: the optional keys are all there (but `lab lava-run`'s and
    # `--coverage`'s).
    assert set(METADATA.optional) - set(metadata) == {"console_excerpt", "lava", "warnings", "coverage"}


def test_a_failed_and_a_cut_short_run(world: World) -> None:  # noqa: F811
    world.suite_results["maps"] = failed_suite("maps")
    world.suite_results["dump"] = timed_out_suite("dump")
    result = execute(world)
    assert result.outcome is Outcome.TIMED_OUT
    assert check_run(result.record.directory) == []
    root = ET.parse(result.record.directory / "junit.xml").getroot()
    assert [s.get("name") for s in root] == ["maps", "dump"] and root.get("failures") == "1"


def test_a_run_that_never_booted(world: World) -> None:  # noqa: F811
    world.boot_error = BootFailed("QEMU exited before init was ready", "")
    directory = execute(world).record.directory
    assert check_run(directory) == []
    assert not (directory / "junit.xml").exists()  # no suite ran, nothing for CI to read


def test_a_damaged_run_fails_the_check(world: World) -> None:  # noqa: F811
    directory = execute(world).record.directory
    metadata = json.loads((directory / "metadata.json").read_text())
    metadata["outcome"] = "sort-of-passed"
    (directory / "metadata.json").write_text(json.dumps(metadata))
    assert any("sort-of-passed" in e for e in check_run(directory))
    (directory / "junit.xml").write_text('<testsuites tests="9" failures="0" errors="0" skipped="0" time="1"/>')
    metadata["outcome"] = "passed"
    (directory / "metadata.json").write_text(json.dumps(metadata))
    assert any("junit.xml: suites []" in e for e in check_run(directory))
    del metadata["kernel"]["package"]
    (directory / "metadata.json").write_text(json.dumps(metadata))
    assert "a debian kernel's identity lacks ['package']" in check_run(directory)


# --- on real runs ----------------------------------------------------------------------------------------


def test_real_run_directories(tmp_path: Path) -> None:
    runs = real_runs()
    if not runs:
        pytest.skip("LAB_SCHEMA_RUNS names no results root: test_e2e_boot checks its own real runs with this "
                    "(make test); set it to check others")
    for directory in runs:
        check_real_run(directory, tmp_path)


def check_real_run(directory: Path, tmp_path: Path) -> None:
    assert check_run(directory) == []
    if not (directory / "junit.xml").exists():
        # Written before junit.xml existed: merge its real junit-<suite>.xml files in a copy and check that.
        copy = shutil.copytree(directory, tmp_path / directory.name)
        junit.write_merged(copy, load_run(str(copy)).suites)
        assert check_junit(copy / "junit.xml", json.loads((copy / "results.json").read_text())) == []


# --- against the README ----------------------------------------------------------------------------------


def readme_item(name: str) -> str:
    """The README "Results" bullet that documents one file, e.g. `metadata.json`."""
    section = README.read_text().split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    items = re.split(r"\n(?=- )", section)
    [item] = [i for i in items if i.startswith(f"- `{name}`")]
    return item


def documented(name: str) -> set[str]:
    return set(re.findall(r"`([a-z_0-9]+)`", readme_item(name)))


@pytest.mark.parametrize("name, schema", [("metadata.json", METADATA), ("results.json", RESULTS)])
def test_the_readme_documents_the_schema(name: str, schema: Obj) -> None:
    words = documented(name)
    assert set(schema.required) | set(schema.optional) <= words, "a key the README does not mention"
    assert words <= keys_of(schema), "the README mentions a key the schema does not have"


def test_the_readme_documents_junit_xml_and_the_reproducer() -> None:
    assert "<testsuites>" in readme_item("junit.xml")
    assert "reproducer.sh" in readme_item("reproducer.sh") and "RESULTS_ROOT" in readme_item("reproducer.sh")
