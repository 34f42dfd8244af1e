"""The kernels a bisection walks, oldest first, good first and bad last: the Debian kernel packages
of one series between two of them (prebuilt: each step is a boot), or the first-parent commits of a
local git tree between two revisions (each step a build of that commit).

A tree is never touched: its commits are checked out in a clone of it in the lab's cache (`git
clone --shared`: the objects are borrowed, not copied), one commit at a time.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..core import apt
from ..core.errors import InfraError, UserError
from ..core.files import keep_newest
from ..core.log import Log
from ..kernel.spec import DebianSpec, parse_kernel_spec

GIT_TIMEOUT = 600.0


@dataclass(frozen=True)
class Candidate:
    label: str  # how a step is printed: debian:6.1.176-1 (6.1.0-50), or a commit's short hash and subject
    key: str  # what identifies it in bisect.json: the package version, or the full commit hash
    kernel: str = ""  # the `lab run --kernel` of a Debian package; a commit's is its build, made at its step


# --- Debian packages ---------------------------------------------------------------------------


def debian_candidates(good: str, bad: str) -> list[Candidate]:
    """Every kernel package of the series from good to bad, in that order (good may be the newer:
    the bisection then finds the first package, going back, that differs)."""
    specs = [parse_kernel_spec(text) for text in (good, bad)]
    if not all(isinstance(spec, DebianSpec) for spec in specs):
        raise UserError("--good and --bad are both Debian kernels (debian:6.1.0-50), or, with --source TREE, "
                        "both revisions of the tree")
    good_spec, bad_spec = specs
    assert isinstance(good_spec, DebianSpec) and isinstance(bad_spec, DebianSpec)
    if (good_spec.series, good_spec.flavour) != (bad_spec.series, bad_spec.flavour):
        raise UserError(f"--good {good} and --bad {bad} are of different series or flavours: a bisection walks "
                        "the packages of one series")
    packages = apt.kernel_packages(good_spec.series, good_spec.flavour)  # newest first
    if not packages:
        apt.check_lists()
        raise UserError(f"no Debian kernel package for debian:{good_spec.series} in the host's apt lists")
    picked = [_pick(packages, spec, text) for spec, text in ((good_spec, good), (bad_spec, bad))]
    if picked[0] == picked[1]:
        raise UserError(f"--good {good} and --bad {bad} are the same package ({apt.describe_package(picked[0])}): "
                        "nothing to bisect")
    indices = [packages.index(p) for p in picked]
    between = packages[min(indices):max(indices) + 1][::-1]  # oldest first
    if indices[0] < indices[1]:  # good is the newer one
        between.reverse()
    return [Candidate(apt.describe_package(p), p.version, DebianSpec(good_spec.series, good_spec.flavour, p.version).text)
            for p in between]


def _pick(packages: list[apt.DebianPackage], spec: DebianSpec, text: str) -> apt.DebianPackage:
    if spec.exact is None:
        return packages[0]
    return apt.pick_exact(packages, spec.exact, text, f"Debian {spec.series} kernel ({spec.flavour})")


def upstream_of(candidate: Candidate) -> str:
    """6.1.176 of the package 6.1.176-1: where a tree's tag v6.1.176 would be."""
    return apt.DebianPackage("", candidate.key).upstream


# --- a git tree's commits ----------------------------------------------------------------------


def _git(tree: Path, *args: str, check: bool = True) -> str:
    try:
        done = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT,
                              check=False)
    except FileNotFoundError as exc:
        raise InfraError("git is not installed") from exc
    if check and done.returncode != 0:
        raise InfraError(f"git {' '.join(args)} in {tree} failed: {done.stderr.strip()[-300:]}")
    return done.stdout if done.returncode == 0 else ""


def check_tree(tree: Path) -> Path:
    """The tree's top directory, or UserError: not a directory, not a git repository."""
    if not tree.is_dir():
        raise UserError(f"--source {tree}: no such directory")
    top = _git(tree, "rev-parse", "--show-toplevel", check=False).strip()
    if not top:
        raise UserError(f"--source {tree}: not a git repository (a bisection over commits needs one)")
    return Path(top)


def resolve(tree: Path, revision: str, option: str) -> str:
    sha = _git(tree, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", check=False).strip()
    if not sha:
        raise UserError(f"{option} {revision}: no such revision in {tree}")
    return sha


def commit_candidates(tree: Path, good: str, bad: str) -> list[Candidate]:
    """good, then the first-parent commits after it up to bad (good must be an ancestor of bad)."""
    good_sha, bad_sha = resolve(tree, good, "--good"), resolve(tree, bad, "--bad")
    if good_sha == bad_sha:
        raise UserError(f"--good {good} and --bad {bad} are the same commit ({good_sha[:12]}): nothing to bisect")
    ancestor = subprocess.run(["git", "-C", str(tree), "merge-base", "--is-ancestor", good_sha, bad_sha],
                              capture_output=True, check=False, timeout=GIT_TIMEOUT)
    if ancestor.returncode != 0:
        raise UserError(f"--good {good} is not an ancestor of --bad {bad} in {tree}")
    lines = _git(tree, "log", "--first-parent", "--reverse", "--format=%H %s", f"{good_sha}..{bad_sha}").splitlines()
    first_parent = [line.split(" ", 1) for line in lines if line.strip()]
    if first_parent[-1][0] != bad_sha:  # pragma: no cover - git guarantees it for an ancestor
        raise InfraError(f"git log {good}..{bad} does not end at {bad}")
    subject = _git(tree, "log", "-1", "--format=%s", good_sha).strip()
    return [Candidate(_commit_label(good_sha, subject), good_sha),
            *(Candidate(_commit_label(sha, rest[0] if rest else ""), sha) for sha, *rest in first_parent)]


def _commit_label(sha: str, subject: str) -> str:
    return f"{sha[:12]} {subject[:60]}".rstrip()


KEPT_CLONES = 2  # each holds a kernel's checked-out sources (about 1.3 GB)


def clone_path(tree: Path, cache: Path) -> Path:
    return cache / "bisect-trees" / hashlib.sha256(str(tree.resolve()).encode()).hexdigest()[:16]


def work_clone(tree: Path, cache: Path, log: Log) -> Path:
    """A clone of the tree in the cache, for checking out commits the tree's own checkout never sees.
    Kept for the next bisection of the same tree (a checkout then rewrites only what changed); the
    least recently used beyond KEPT_CLONES are removed."""
    clone = clone_path(tree, cache)
    if (clone / ".git").is_dir():
        os.utime(clone)
    else:
        clone.parent.mkdir(parents=True, exist_ok=True)
        log(f"bisect: cloning {tree} into {clone} (objects shared, the tree untouched)")
        partial = clone.with_name(f".{clone.name}.partial")
        subprocess.run(["rm", "-rf", str(partial)], check=False)
        _git(clone.parent, "clone", "--quiet", "--shared", "--no-checkout", str(tree.resolve()), str(partial))
        partial.rename(clone)
    keep_newest(clone.parent, KEPT_CLONES)
    # A shared clone reads the tree's objects where they are: a commit made there since is seen too.
    return clone


def check_out(clone: Path, sha: str) -> None:
    """The clone's work tree at this commit, and nothing else in it (Kbuild refuses a stray .config)."""
    _git(clone, "checkout", "--quiet", "--force", "--detach", sha)
    _git(clone, "clean", "--quiet", "-fdx")
