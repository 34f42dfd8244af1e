"""The kernel's own KTAP parser, tools/testing/kunit/kunit_parser.py, from Debian's
linux-source-6.1 as the lab acquires it (downloaded and unpacked once, then cached): what reads
`lab report --format ktap` in the tests, a parser no one here wrote."""
from __future__ import annotations

import functools
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

from e2ehelpers import lab

from lab.core.paths import cache_dir
from lab.kernel import source


@functools.cache
def kunit_parser() -> ModuleType:
    tree = source.acquire(source.parse_source_spec("debian:6.1"), cache_dir(), lambda line: print(line))
    kunit = str(tree.root / "tools" / "testing" / "kunit")
    sys.path.insert(0, kunit)  # kunit_parser imports kunit_printer from its own directory
    try:
        return importlib.import_module("kunit_parser")
    finally:
        sys.path.remove(kunit)


def parsed(run: Path) -> object:
    """`lab report --format ktap RUN` as the kernel's parser reads it: its main Test."""
    printed = lab("report", "--format", "ktap", str(run))
    assert printed.returncode in (0, 1), printed.stderr
    return kunit_parser().parse_run_tests(printed.stdout.splitlines())


def check_ktap_counts(run: Path) -> None:
    """A real run's KTAP: the parser's counts equal results.json's, suite by suite, and no parse error."""
    summaries = json.loads((run / "results.json").read_text())["suites"]
    test = parsed(run)
    counts = test.counts
    assert (counts.passed, counts.failed, counts.skipped, counts.crashed, counts.errors) == (
        sum(s["passed"] for s in summaries), sum(s["failed"] + s["errors"] for s in summaries),
        sum(s["skipped"] for s in summaries), 0, 0), (run, str(counts))
    assert [sub.name for sub in test.subtests] == [s["suite"] for s in summaries]
    for sub, summary in zip(test.subtests, summaries):
        assert sub.counts.total() == summary["passed"] + summary["failed"] + summary["skipped"] + summary["errors"]
    ok = kunit_parser().TestStatus.SUCCESS
    assert test.status == ok if all(s["failed"] + s["errors"] == 0 for s in summaries) else test.status != ok
