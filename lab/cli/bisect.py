"""`lab bisect --good K --bad K --test SUITE/FILE::TEST [--property KEY] [--repeat N] [--source TREE]`:
the first kernel where the test's outcome (or the value it records under KEY) differs from the
good kernel's.

- Debian kernels (`--good debian:6.1.0-47 --bad debian:6.1.0-57`): the packages of the series
  between them, prebuilt, each step a boot and the test alone.
- With `--source TREE` and revisions (`--good v6.1.170 --bad HEAD`): the first-parent commits of
  the git tree between them, each built with the lab's fragments (and --config/--patch) and ccache;
  one that does not build is skipped. Given Debian kernels and `--source TREE`, the packages are
  bisected first, then the tree's commits between the tags of the pair found (v6.1.176..v6.1.187).

Exit codes: 0 an answer (the first changed kernel, or the range skips left); 1 undecidable (an
endpoint cannot be judged, or its runs disagree); 2 bad input (also: good and bad agree);
8 the host failed (rerun: the steps decided are reused); 130 interrupted (the same).
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from ..bisect import candidates as bcandidates
from ..bisect import judge, search
from ..bisect import session as bsession
from ..bisect.candidates import Candidate
from ..core import lock
from ..core.errors import InfraError, UserError
from ..core.log import stderr as log
from ..core.paths import cache_dir
from ..kernel import build as kernel_build
from ..kernel import source as ksource
from ..kernel.spec import DebianSpec, parse_kernel_spec
from ..matrix import children as matrixrun
from ..run import selection
from . import options

UNDECIDABLE_EXIT = 1
CLONE_WAIT_SECONDS = 6 * 3600.0  # another bisection of the same tree: wait for it, saying so


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("bisect", help="the first kernel (package, then commit) where a test's outcome "
                                                "or a property it records changes")
    parser.add_argument("--good", required=True, metavar="K", help="a Debian kernel (debian:6.1.0-47), or a revision "
                                                                   "of --source TREE: where the test does what it used to")
    parser.add_argument("--bad", required=True, metavar="K", help="the same kind: where it does something else")
    parser.add_argument("--test", required=True, metavar="SUITE/FILE::TEST",
                        help="the one test to judge, named as `lab compare` prints it")
    parser.add_argument("--property", metavar="KEY", help="judge the value the test records under KEY, not its outcome")
    parser.add_argument("--source", metavar="TREE", help="a git kernel tree: bisect its commits (after the packages, "
                                                         "when --good/--bad are Debian kernels)")
    parser.add_argument("--config", action="append", default=[], metavar="FRAGMENT",
                        help="Kconfig fragment for the commits' builds (repeatable)")
    parser.add_argument("--patch", action="append", default=[], metavar="FILE",
                        help="patch applied to each commit before its build (repeatable)")
    parser.add_argument("--guest-tests", metavar="DIR", help="ship this directory instead of guest-tests/")
    parser.add_argument("--jobs", type=options.count, help="runs (VMs) at once (default: min(cores, memory))")
    options.add_repeat(parser, "each kernel")
    options.add_accel(parser)
    options.add_cmdline(parser)
    options.add_results(parser)
    options.add_bounds(parser)
    parser.set_defaults(func=cmd_bisect)


def _is_debian(text: str) -> bool:
    try:
        return isinstance(parse_kernel_spec(text), DebianSpec)
    except UserError:
        return False


class Plan:
    """Everything checked before the first run or build."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.tree = options.test_tree(args)
        suite, name = selection.one_test(args.test, self.tree)
        self.probe = judge.Probe(suite, name, args.property)
        self.debian = _is_debian(args.good) and _is_debian(args.bad)
        self.source = bcandidates.check_tree(Path(args.source).expanduser()) if args.source else None
        if not self.debian and self.source is None:
            if _is_debian(args.good) or _is_debian(args.bad):
                raise UserError("--good and --bad are both Debian kernels, or both revisions of --source TREE")
            raise UserError(f"--good {args.good}: not a Debian kernel (debian:6.1.0-50); revisions need --source TREE")
        if (args.config or args.patch) and self.source is None:
            raise UserError("--config and --patch are for the builds of a tree's commits: they need --source TREE")
        self.fragments = tuple(Path(f).expanduser() for f in args.config)
        self.patches = tuple(Path(p).expanduser() for p in args.patch)
        kernel_build.check_request(kernel_build.BuildRequest(ksource.TreeSource(Path(".")), self.fragments, self.patches))
        self.packages = bcandidates.debian_candidates(args.good, args.bad) if self.debian else []
        self.commits = [] if self.debian else bcandidates.commit_candidates(self.source or Path("."), args.good, args.bad)
        self.commits_done = self.commits  # the commits bisected: after the packages, those between their tags

    def request(self, args: argparse.Namespace) -> dict[str, object]:
        """What the bisection's directory is keyed by: the same command again reuses its steps."""
        return {"good": args.good, "bad": args.bad, "test": args.test, "property": args.property,
                "repeat": args.repeat, "source": str(self.source) if self.source else None,
                "packages": [c.key for c in self.packages], "commits": [c.key for c in self.commits],
                "fragments": [kernel_build.Fragment(p.name, p.read_text()).sha256 for p in self.fragments],
                "patches": [str(p.resolve()) for p in self.patches],
                "guest_tests": str(self.tree.root) if self.tree else None, "run_options": options.child_run_options(args)}


def _announce(phase: str, count: int) -> Callable[[int, bsession.Step, str], None]:
    def say(index: int, step: bsession.Step, verdict: str) -> None:
        seen = step.value if step.value is not None else step.note
        print(f"bisect: {phase} [{index + 1}/{count}] {step.label}: {verdict} ({seen}) {step.seconds:.1f} s", flush=True)
    return say


def _builder(clone: Path, plan: Plan, cache: Path) -> bsession.Prepare:
    def prepare(candidate: Candidate) -> str | bsession.Step:
        bcandidates.check_out(clone, candidate.key)
        request = kernel_build.BuildRequest(ksource.TreeSource(clone), plan.fragments, plan.patches)
        try:
            built = kernel_build.build(request, cache, log)
        except UserError as exc:  # a compiler or config error of this commit: untestable, as `git bisect skip`
            return bsession.Step(candidate.key, candidate.label, "", search.SKIPPED, None,
                                 f"does not build: {str(exc).splitlines()[0]}")
        return f"build:{built.build_id}"
    return prepare


def _commit_phase(plan: Plan, session: bsession.Session, runner: bsession.Runner, cache: Path,
                  commits: list[Candidate]) -> bsession.PhaseResult:
    assert plan.source is not None
    clone = bcandidates.clone_path(plan.source, cache)
    clone.parent.mkdir(parents=True, exist_ok=True)
    # One bisection at a time checks out commits in a tree's clone.
    with lock.locked(clone, log, f"the bisection clone of {plan.source}", wait_seconds=CLONE_WAIT_SECONDS):
        bcandidates.work_clone(plan.source, cache, log)
        return bsession.bisect(session, runner, "commits", commits, _builder(clone, plan, cache),
                               _announce("commits", len(commits)))


def _tags_between(plan: Plan, answer: search.Answer) -> list[Candidate] | None:
    """The tree's commits between the tags of the package pair found (v6.1.176..v6.1.187), if it has both."""
    assert plan.source is not None
    good_tag = f"v{bcandidates.upstream_of(plan.packages[answer.last_good])}"
    bad_tag = f"v{bcandidates.upstream_of(plan.packages[answer.first_changed])}"
    try:
        return bcandidates.commit_candidates(plan.source, good_tag, bad_tag)
    except UserError as exc:
        print(f"bisect: the commits stay unbisected: {exc}")
        return None


def _conclude(result: bsession.PhaseResult, phase: str, plan: Plan, session: bsession.Session,
              extra: list[str], cache: Path) -> int:
    if result.answer is None:
        print(f"bisect: {result.problem}")
        session.save(answer={"phase": phase, "problem": result.problem})
        return 2 if result.agree else UNDECIDABLE_EXIT
    answer = result.answer
    steps = {step.key: step for step in result.steps}
    candidates = plan.packages if phase == "packages" else plan.commits_done
    good, changed = (steps[candidates[i].key] for i in (answer.last_good, answer.first_changed))
    if answer.exact:
        print(f"bisect: first changed: {changed.label}: {plan.probe.label} {changed.value!r} "
              f"(last good {good.label}: {result.good_value!r})")
    else:
        print(f"bisect: the first changed is one of {len(answer.suspects)}, skips prevent an exact answer:")
        for index in answer.suspects:
            known = steps.get(candidates[index].key)
            print(f"  {candidates[index].label}: {known.verdict if known else 'untried'} ({known.note if known else ''})")
    notes = [f"the test: {plan.probe.label}; good value {result.good_value!r}, changed {result.bad_value!r}"]
    script = bsession.write_reproducer(session, good, changed, extra, notes, cache)
    session.save(answer={"phase": phase, "exact": answer.exact, "last_good": good.label, "first_changed": changed.label,
                         "suspects": [candidates[i].label for i in answer.suspects],
                         "good_value": result.good_value, "changed_value": result.bad_value})
    print(f"bisect: {len(result.steps)} steps ({session.reused} reused); every step's runs are in {session.directory}")
    for step in result.steps:
        print(f"  {step.label}: {', '.join(step.runs) or step.note}")
    print(f"reproducer: {script}")
    return 0


def cmd_bisect(args: argparse.Namespace) -> int:
    plan = Plan(args)  # every bad input is one line here, before anything is fetched, built or booted
    root = options.results_root(args)
    cache = cache_dir()
    session = bsession.Session(root, plan.request(args), log)
    extra = [*options.selection_argv([args.test], args.guest_tests), *options.child_run_options(args)]
    jobs = args.jobs or matrixrun.default_jobs(os.cpu_count(), matrixrun.mem_available_mb())
    # The children's stage lines are left out: each step's own line says what it found (on a
    # terminal the running children's test counts are still drawn).
    runner = bsession.Runner(plan.probe, extra, args.repeat, jobs, dict(os.environ), lambda line: None)
    log(f"bisect: {plan.probe.label}; {session.directory}"
        + (f" (reusing {session.reused} steps decided before)" if session.reused else ""))
    phase = "packages" if plan.debian else "commits"
    try:
        matrixrun.prepare_cache(log)
        if plan.debian:
            result = bsession.bisect(session, runner, "packages", plan.packages, lambda c: c.kernel,
                                     _announce("packages", len(plan.packages)))
            status = _conclude(result, "packages", plan, session, extra, cache)
            if status != 0 or plan.source is None or result.answer is None or not result.answer.exact:
                return status
            commits = _tags_between(plan, result.answer)
            if commits is None:
                return status
            phase, plan.commits_done = "commits", commits
        result = _commit_phase(plan, session, runner, cache, plan.commits_done)
        return _conclude(result, "commits", plan, session, extra, cache)
    except judge.HostFailed as exc:
        raise InfraError(f"{exc}; rerun the same command to go on ({session.directory} keeps the steps decided)") from exc
    except KeyboardInterrupt:
        print(f"bisect: interrupted at {session.current or phase}; rerun the same command to go on "
              f"({session.directory} keeps the steps decided)", flush=True)
        raise
