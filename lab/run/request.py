"""What a run was asked to do, as plain data: a kernel the lab boots, or a machine it reaches.

reproducer.sh is written from these, so they hold what the user said (a bound they did not give
stays None), not what the run derived from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core.timeouts import Timeouts
from ..kernel.spec import KernelSpec
from ..results.kernel_log import SplatPolicy
from ..target.remote import SshUrl
from .selection import Selection
from .suites import TestTree


@dataclass
class RunRequest:
    kernel: KernelSpec
    kernel_label: str
    suites: list[str]
    accel: str = "auto"  # auto | kvm | tcg
    results_root: Path = Path("results")
    suite_timeout: float | None = None
    extra_cmdline: str = ""
    timeouts: Timeouts = field(default_factory=Timeouts)
    tree: TestTree | None = None  # None: guest-tests/ and its suites
    boot_timeout: float | None = None
    run_timeout: float | None = None  # the whole run, on top of each stage's own bound
    ssh_timeout: float | None = None
    command_timeout: float | None = None
    probe_timeout: float | None = None  # None: accel.PROBE_TIMEOUT
    splats: SplatPolicy = field(default_factory=SplatPolicy)
    snapshot: bool = True  # restore a saved guest of this configuration (or save one); False: --no-snapshot
    selection: Selection | None = None  # --test: only these tests of the suites
    repeat: int | None = None  # this run's number among --repeat N (the guest sees LAB_REPEAT)
    suite_jobs: int | None = None  # suites at once in the target (--suite-jobs; None: one per CPU)
    coverage: bool = False  # --coverage: the kernel's gcov counters per suite (a coverage build)
    tree_given: bool = False  # tree came from --guest-tests (reproducer.sh names it), not from a test


@dataclass
class TargetRunRequest:
    url: SshUrl
    suites: list[str]
    results_root: Path
    timeouts: Timeouts = field(default_factory=Timeouts)
    run_timeout: float | None = None
    splats: SplatPolicy = field(default_factory=SplatPolicy)
    tree: TestTree | None = None
    key: Path | None = None  # as given, for reproducer.sh
    known_hosts: Path | None = None
    selection: Selection | None = None
    repeat: int | None = None
    tree_given: bool = False
    suite_jobs: int | None = None
