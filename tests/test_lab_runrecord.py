"""lab.runrecord: what a run learnt is on disk at every step."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from lab.results import record as runrecord
from lab.core.outcome import Outcome, Verdict
from lab.results.model import PASSED, FAILED, SuiteResult
from lab.results.model import TestRecord as Record
from lab.results.record import RunRecord

REQUEST = {"kernel": "debian:6.1", "suites": ["maps"], "accel": "auto"}


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_metadata_and_results_exist_right_after_create(tmp_path: Path) -> None:
    record = RunRecord.create(tmp_path / "results", "6.1.0-56-cloud-amd64", REQUEST)
    assert record.directory.parent == tmp_path / "results"
    metadata = read(record.directory / "metadata.json")
    assert metadata["run_id"] == record.directory.name
    assert metadata["request"] == REQUEST
    assert metadata["outcome"] is None
    assert metadata["stages"] == {}
    assert set(metadata["host"]) == {"name", "kernel", "python"}
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", metadata["started"])
    assert read(record.directory / "results.json") == {"run_id": record.directory.name, "suites": [], "tests": []}
    assert not list(record.directory.glob("*.tmp"))


def test_run_id_format() -> None:
    run_id = runrecord.new_run_id("6.12.117+deb12-cloud-amd64")
    assert re.fullmatch(r"\d{8}-\d{6}-6\.12\.117-deb12-cloud-amd64-[0-9a-f]{4}", run_id), run_id


def test_run_id_of_a_hostile_label_is_one_safe_path_component() -> None:
    run_id = runrecord.new_run_id("../../etc/passwd x;rm -rf ~" + "a" * 100)
    assert "/" not in run_id and " " not in run_id and ";" not in run_id
    assert len(run_id) <= len("20240101-000000-") + 40 + len("-abcd")


def test_run_directories_are_unique(tmp_path: Path) -> None:
    records = [RunRecord.create(tmp_path, "6.1.0", REQUEST) for _ in range(5)]
    assert len({r.directory for r in records}) == 5
    assert len({read(r.directory / "metadata.json")["run_id"] for r in records}) == 5


def test_create_survives_a_run_id_collision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two runs of the same kernel started within one second can draw the same 16-bit suffix.
    ids = iter(["20240101-000000-6.1.0-abcd", "20240101-000000-6.1.0-abcd", "20240101-000000-6.1.0-beef"])
    monkeypatch.setattr(runrecord, "new_run_id", lambda label: next(ids))
    first = RunRecord.create(tmp_path, "6.1.0", REQUEST)
    second = RunRecord.create(tmp_path, "6.1.0", {"kernel": "other"})
    assert first.directory != second.directory
    assert read(first.directory / "metadata.json")["request"] == REQUEST  # not overwritten


def test_an_existing_directory_is_never_reused(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(FileExistsError):
        RunRecord(tmp_path / "run", REQUEST)


def test_stage_records_done_with_seconds(tmp_path: Path) -> None:
    record = RunRecord.create(tmp_path, "k", REQUEST)
    with record.stage("ship"):
        # While it runs, the file says so.
        assert read(record.directory / "metadata.json")["stages"]["ship"] == {"status": "running"}
        time.sleep(0.05)
    stage = read(record.directory / "metadata.json")["stages"]["ship"]
    assert stage["status"] == "done"
    assert 0.04 <= stage["seconds"] < 5


def test_stage_records_failed_when_the_body_raises(tmp_path: Path) -> None:
    record = RunRecord.create(tmp_path, "k", REQUEST)
    with pytest.raises(RuntimeError, match="boom"):
        with record.stage("suite:maps"):
            raise RuntimeError("boom")
    stage = read(record.directory / "metadata.json")["stages"]["suite:maps"]
    assert stage["status"] == "failed"
    assert stage["error"] == "boom"
    assert stage["seconds"] >= 0


def test_stage_records_failed_on_keyboard_interrupt(tmp_path: Path) -> None:
    record = RunRecord.create(tmp_path, "k", REQUEST)
    with pytest.raises(KeyboardInterrupt):
        with record.stage("accelerator"):
            raise KeyboardInterrupt
    assert read(record.directory / "metadata.json")["stages"]["accelerator"]["status"] == "failed"


def test_stages_keep_their_order(tmp_path: Path) -> None:
    record = RunRecord.create(tmp_path, "k", REQUEST)
    for name in ("accelerator", "ship", "suite:maps", "suite:dump"):
        with record.stage(name):
            pass
    assert list(read(record.directory / "metadata.json")["stages"]) == ["accelerator", "ship", "suite:maps",
                                                                         "suite:dump"]


def test_set_is_saved_at_once(tmp_path: Path) -> None:
    record = RunRecord.create(tmp_path, "k", REQUEST)
    record.update(accelerator={"name": "tcg", "reason": "x", "probed": True})
    assert read(record.directory / "metadata.json")["accelerator"] == {"name": "tcg", "reason": "x", "probed": True}


def test_add_suite_writes_results_json(tmp_path: Path) -> None:
    record = RunRecord.create(tmp_path, "k", REQUEST)
    maps = SuiteResult("maps", [Record("maps", "test_maps.py::test_a", PASSED, 0.5, properties={"k": "v"}),
                                Record("maps", "test_maps.py::test_b", FAILED, 0.25, "assert 1 == 2")], 3.0, 1)
    record.add_suite(maps)
    data = read(record.directory / "results.json")
    assert data["suites"] == [maps.summary()]
    assert [t["name"] for t in data["tests"]] == ["test_maps.py::test_a", "test_maps.py::test_b"]
    assert data["tests"][0]["properties"] == {"k": "v"}
    assert data["tests"][1]["message"] == "assert 1 == 2"
    dump = SuiteResult("dump", [], 600.0, None, "timed out: x")
    record.add_suite(dump)
    data = read(record.directory / "results.json")
    assert [s["suite"] for s in data["suites"]] == ["maps", "dump"]
    assert data["suites"][1]["error"] == "timed out: x"
    assert len(data["tests"]) == 2


def test_finish_writes_the_outcome(tmp_path: Path) -> None:
    record = RunRecord.create(tmp_path, "k", REQUEST)
    record.finish(Verdict(Outcome.KERNEL_CRASHED, "BUG: kernel NULL pointer dereference", "line 1\nline 2"))
    metadata = read(record.directory / "metadata.json")
    assert metadata["outcome"] == "kernel-crashed"
    assert metadata["reason"] == "BUG: kernel NULL pointer dereference"
    assert metadata["console_excerpt"] == "line 1\nline 2"
    assert metadata["finished"] >= metadata["started"]


def test_finish_without_excerpt(tmp_path: Path) -> None:
    record = RunRecord.create(tmp_path, "k", REQUEST)
    record.finish(Verdict(Outcome.PASSED, "every suite passed"))
    metadata = read(record.directory / "metadata.json")
    assert metadata["outcome"] == "passed"
    assert "console_excerpt" not in metadata
