"""The suites' recorded properties are behaviour, not noise: run on this host's kernel (root)
twice, the three suites record the same properties (measurements aside, as `lab compare`
ignores them), and every property the suites record where the kernel has latitude is there.

The suites run as the guest runs them (pytest with a JUnit report, read back by
lab.results.junit) and compared by lab.report.compare.property_changes, so what passes here
is what `lab compare` of two runs of one kernel would show.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from guesthelpers import GUEST_TESTS

from lab.report.compare import property_changes
from lab.results import model
from lab.results.junit import parse_junit
from lab.results.model import ERROR, FAILED, SKIPPED

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the suites need root for bpf(2)")

SUITES = ("maps", "dump", "pin")

# (test name prefix, property key, how many tests with that prefix record it at least).
# Each is a place where the kernel has latitude; the values are the kernel's and are not
# checked here (the suites check what the kernel defines), only that they are recorded.
LATITUDE_PROPERTIES: list[tuple[str, str, int]] = [
    ("test_maps_errno_order.py::test_errno_checked_first[", "errno_first", 35),
    ("test_pin_errors.py::test_errno_checked_first[", "errno_first", 6),
    ("test_maps_hash.py::test_lru_never_e2big_it_evicts[", "lru_survivors_of_256_writes", 3),
    ("test_maps_hash.py::test_lru_never_e2big_it_evicts[", "lru_surviving_keys", 3),
    ("test_maps_ids_info.py::test_info_fields_past_the_head", "bpf_map_info_tail", 1),
    ("test_maps_ids_info.py::test_info_fields_past_the_head", "bpf_map_info_bytes_past_map_extra", 1),
    ("test_maps_ids_info.py::test_reported_geometry[", "reported_geometry", 13),
    ("test_maps_spin_lock.py::test_info_reports_the_btf", "btf_map_info_vmlinux_fields", 1),
    ("test_maps_percpu_layout.py::test_slot_padding_after_a_padded_update[", "slot_padding_after_update", 6),
    ("test_maps_get_next_key.py::test_missing_start_key[", "get_next_key_after_missing_key", 9),
    ("test_maps_queue_stack.py::test_empty_peek_and_pop_and_the_value_buffer[", "value_buffer_on_empty", 2),
    ("test_maps_access.py::test_frozen_map_and_the_batch_commands", "frozen_map_batch_commands", 1),
    ("test_maps_access.py::test_freeze_and_mmap_of_an_mmapable_array", "freeze_vs_mmap", 1),
    ("test_maps_lpm.py::test_get_next_key_order", "lpm_walk_order", 1),
    ("test_dump_batch.py::test_generic_batch_cursor_bytes[", "cursor_after_three", 3),
    ("test_pin_stat.py::test_stat_of_pins_directories_and_links", "bpffs_stat", 1),
    ("test_pin_stat.py::test_statfs_of_a_bpffs", "bpffs_statvfs", 1),
    ("test_pin_stat.py::test_mount_options_honoured_and_shown", "bpffs_root_owner_with_uid_gid_options", 1),
    ("test_pin_stat.py::test_mount_options_honoured_and_shown", "bpffs_shown_options", 1),
    ("test_pin_stat.py::test_pin_and_get_relative_to_a_directory_fd", "obj_pin_path_fd", 1),
]

# model.TestRecord, not imported by name: pytest would try to collect a Test* class here.
Run = dict[str, model.TestRecord]


def run_suites(out: Path) -> Run:
    """All three suites in one pytest session (one probe), with the guest's plugin and report."""
    report = out / "suites.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "labstream", "-q",
         f"--junitxml={report}", "-o", "junit_family=xunit1", *(f"suites/{s}" for s in SUITES)],
        cwd=GUEST_TESTS, capture_output=True, text=True, timeout=900, check=False)
    assert report.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    records = {r.name: r for r in parse_junit(report.read_text(), "all")}
    assert records, done.stdout[-2000:]
    return records


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    return run_suites(tmp_path_factory.mktemp("first")), run_suites(tmp_path_factory.mktemp("second"))


def test_both_runs_pass(two_runs: tuple[Run, Run]) -> None:
    for run in two_runs:
        failed = {name: r.message for name, r in run.items() if r.outcome in (FAILED, ERROR)}
        assert not failed, failed


def test_two_runs_of_one_kernel_record_the_same_properties(two_runs: tuple[Run, Run]) -> None:
    first, second = two_runs
    assert set(first) == set(second), "the two runs ran different tests"
    differing = {name: [(c.key, c.a, c.b) for c in changes]
                 for name in sorted(first)
                 if (changes := property_changes(first[name].properties, second[name].properties))}
    assert not differing, f"properties that changed between two runs of one kernel: {differing}"
    assert sum(len(r.properties) for r in first.values()) > 150, "hardly any properties recorded"


@pytest.mark.parametrize(("prefix", "key", "at_least"), LATITUDE_PROPERTIES,
                         ids=[f"{p.split('::')[1].rstrip('[')}:{k}" for p, k, _ in LATITUDE_PROPERTIES])
def test_latitude_property_is_recorded(two_runs: tuple[Run, Run], prefix: str, key: str, at_least: int) -> None:
    first, _ = two_runs
    # A test the kernel lacks a feature for skips (with its reason) and records nothing.
    tests = {name: r for name, r in first.items() if name.startswith(prefix) and r.outcome != SKIPPED}
    assert len(tests) >= at_least, f"{len(tests)} tests named {prefix}*: {sorted(tests)}"
    missing = sorted(name for name, r in tests.items() if key not in r.properties or not r.properties[key])
    assert not missing, f"{key} not recorded by {missing}"
