"""reproducer.sh: a script in the run directory that reruns this run with the same kernel and options.

The `lab run` options are rebuilt from the RunRequest rather than copied from sys.argv, so the
runs of `lab validate` (whose own options name a source and patches) get a `lab run` line too.
Paths are made absolute because the script runs from the repository root.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path

from ..core.paths import REPO_ROOT
from ..core.timeouts import Timeouts
from ..kernel import ident as kernelident
from ..kernel.spec import BuildSpec, DebianSpec, KernelSpec
from ..results import layout
from ..results.record import RunRecord
from .request import RunRequest, TargetRunRequest
from .selection import Selection
from .suites import TestTree

SCRIPT_NAME = layout.REPRODUCER

# RunRequest attribute -> the `lab run` option that sets it.
BOUND_OPTIONS = {
    "suite_timeout": "--suite-timeout",
    "boot_timeout": "--boot-timeout",
    "ssh_timeout": "--ssh-timeout",
    "command_timeout": "--command-timeout",
    "probe_timeout": "--probe-timeout",
    "run_timeout": "--run-timeout",
}

# Besides LAB_CACHE, variables the run read from the environment; the rerun sees the same ones.
CARRIED_ENVIRONMENT = ("LAB_APT_SOURCES",)


def _option(name: str, value: str) -> str:
    # `--opt=value`, never `--opt value`: argparse takes a value such as "-EFAULT" for an option.
    return f"{name}={value}"


def kernel_argv(spec: KernelSpec, identity: Mapping[str, object] | None = None) -> list[str]:
    """--kernel for a rerun of exactly this kernel: a Debian spec is pinned to the package version
    the run got (identity's `version`), so the rerun does not take a newer one."""
    if isinstance(spec, DebianSpec):
        version = (identity or {}).get("version")
        pinned = DebianSpec(spec.series, spec.flavour, str(version)) if version else spec
        return [_option("--kernel", pinned.text)]
    if isinstance(spec, BuildSpec):
        return [_option("--kernel", f"build:{spec.build_id}")]
    argv = [_option("--kernel", str(spec.image.resolve()))]
    if spec.modules:
        argv.append(_option("--modules", str(spec.modules.resolve())))
    if spec.config:
        argv.append(_option("--config", str(spec.config.resolve())))
    return argv


def run_argv(request: RunRequest, identity: Mapping[str, object] | None = None) -> list[str]:
    """`lab run`'s options for this request, without --results (the script lets the caller choose)."""
    argv = ["run", *kernel_argv(request.kernel, identity), *_tests_argv(request.selection, request.suites),
            _option("--accel", request.accel), *_tree_argv(request.tree, request.tree_given)]
    if request.extra_cmdline:
        argv.append(_option("--cmdline", request.extra_cmdline))
    if not request.snapshot:
        argv.append("--no-snapshot")
    for attribute, option in BOUND_OPTIONS.items():
        value = getattr(request, attribute)
        if value is not None:
            argv.append(_option(option, repr(float(value))))
    argv += [_option("--allow-splat", pattern) for pattern in request.splats.allow]
    argv += [_option("--deny-splat", pattern) for pattern in request.splats.deny]
    return argv + _jobs_argv(request.suite_jobs) + (["--coverage"] if request.coverage else [])


def _jobs_argv(jobs: int | None) -> list[str]:
    return [_option("--suite-jobs", str(jobs))] if jobs is not None else []


def _tests_argv(selection: Selection | None, suites: list[str]) -> list[str]:
    """--test for each selected test (their suites follow from them), else --suite."""
    if selection is not None:
        return [_option("--test", name) for name in selection.names]
    return [_option("--suite", ",".join(suites))]


def _tree_argv(tree: TestTree | None, given: bool) -> list[str]:
    return [_option("--guest-tests", str(tree.root.resolve()))] if tree is not None and given else []


def target_argv(request: TargetRunRequest) -> list[str]:
    """`lab run --target` options for this request (no --results: the script lets the caller choose)."""
    argv = ["run", _option("--target", str(request.url)), *_tests_argv(request.selection, request.suites),
            *_tree_argv(request.tree, request.tree_given)]
    if request.key is not None:
        argv.append(_option("--key", str(request.key.resolve())))
    if request.known_hosts is not None:
        argv.append(_option("--known-hosts", str(request.known_hosts.resolve())))
    bounds = {"--suite-timeout": request.timeouts.suite, "--ssh-timeout": request.timeouts.ssh,
              "--command-timeout": request.timeouts.command, "--run-timeout": request.run_timeout}
    argv += [_option(option, repr(float(value))) for option, value in bounds.items() if value is not None]
    argv += [_option("--allow-splat", pattern) for pattern in request.splats.allow]
    argv += [_option("--deny-splat", pattern) for pattern in request.splats.deny]
    return argv + _jobs_argv(request.suite_jobs)


def _tree_note(tree: TestTree | None, given: bool = False) -> list[str]:
    return [] if tree is None or given else [f"this run used the test tree {tree.root}; the script runs guest-tests/"]


def _repeat_note(repeat: int | None) -> list[str]:
    if repeat is None:
        return []
    return [f"this run was repetition {repeat} of --repeat (the guest saw LAB_REPEAT={repeat}); the script runs it once"]


def target_caveats(request: TargetRunRequest, release: str, version: str) -> list[str]:
    """Where a rerun on the same machine may differ: the machine itself, and a test tree set by tests."""
    return [f"a machine changes between runs: this one ran kernel {release} ({version})",
            *_tree_note(request.tree, request.tree_given), *_repeat_note(request.repeat)]


def caveats(request: RunRequest) -> list[str]:
    """Where a rerun may differ: what no `lab run` option can say (set by tests and tools)."""
    notes = []
    if isinstance(request.kernel, DebianSpec) and request.kernel.exact is None:
        notes.append(f"this run asked for {request.kernel.text} (the newest {request.kernel.series} then); "
                     "the script pins the package it got")
    notes += _tree_note(request.tree, request.tree_given)
    notes += _repeat_note(request.repeat)
    if request.timeouts != Timeouts():
        notes.append(f"this run used base timeouts {request.timeouts}; the script uses the defaults")
    return notes


def lab_revision(repo: Path = REPO_ROOT) -> tuple[str | None, bool]:
    """The lab's git commit and whether the checkout differs from it; (None, False) outside git."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30, check=False)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None, False
        status = git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return None, False
    return head.stdout.strip(), bool(status.stdout.strip())


def comment_text(text: str) -> str:
    """Text for a `#` line: what a kernel or a machine said (a release, a package version) may hold
    a newline, which would make the rest of it a command; every control character is escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def render(*, run_id: str, argv: list[str], results_root: Path, repo_root: Path, cache: Path,
           kernel: Mapping[str, object], image_digest: str, revision: tuple[str | None, bool],
           environment: Mapping[str, str], notes: list[str]) -> str:
    commit, dirty = revision
    lab = f"{commit}{' (dirty: uncommitted changes)' if dirty else ''}" if commit else "unknown (not a git checkout)"
    lines = [
        "#!/bin/sh",
        f"# Reruns bpf-kernel-lab run {run_id} with the same kernel spec, suites and options.",
        f"# usage: sh {SCRIPT_NAME} [RESULTS_ROOT]    (default: this run's results root)",
        f"# then:  lab compare {comment_text(shlex.quote(str(results_root / run_id)))} NEW_RUN   (no differences: reproduced)",
        "#",
        "# The run it reproduces:",
        f"#   kernel: {comment_text(kernelident.describe(kernel))}",
        f"#   image:  sha256 {comment_text(image_digest)}",
        f"#   lab:    git {lab}",
        *(f"# note: {comment_text(note)}" for note in notes),
        "set -eu",
        f"results=${{1:-{shlex.quote(str(results_root))}}}",
        'case $results in /*) ;; *) results=$PWD/$results ;; esac  # relative to where you are, not the lab',
        f"cd {shlex.quote(str(repo_root))}",
        # This run's cache (its build:<id> kernels, its image) and apt sources, unless the caller sets others.
        *(f"{name}=${{{name}:-{shlex.quote(value)}}}; export {name}"
          for name, value in {"LAB_CACHE": str(cache), **environment}.items()),
        'if [ -x .venv/bin/lab ]; then set -- .venv/bin/lab; else set -- python3 -m lab; fi',
        f'exec "$@" {shlex.join(argv)} --results "$results"',
    ]
    return "\n".join(lines) + "\n"


def write_script(run_dir: Path, argv: list[str], results_root: Path, cache: Path, kernel: Mapping[str, object],
                 image_digest: str, revision: tuple[str | None, bool], notes: list[str]) -> Path:
    """reproducer.sh for any `lab` command line that takes --results (`lab run`, `lab lava-run`)."""
    environment = {name: str(Path(os.environ[name]).resolve()) for name in CARRIED_ENVIRONMENT if os.environ.get(name)}
    text = render(run_id=run_dir.name, argv=argv, results_root=results_root.resolve(),
                  repo_root=REPO_ROOT, cache=cache.resolve(), kernel=kernel, image_digest=image_digest,
                  revision=revision, environment=environment, notes=notes)
    path = run_dir / SCRIPT_NAME
    path.write_text(text)
    path.chmod(0o755)
    return path


def attach(record: RunRecord, argv: list[str], results_root: Path, cache: Path, kernel: Mapping[str, object],
           image_digest: str, notes: list[str]) -> None:
    """Every kind of run (`lab run`, `--target`, `lab lava-run`): the lab's revision and
    reproducer.sh, both named in the run's metadata."""
    revision = lab_revision()
    record.update(lab={"commit": revision[0], "dirty": revision[1]})
    write_script(record.directory, argv, results_root, cache, kernel, image_digest, revision, notes)
    record.update(reproducer=SCRIPT_NAME)
