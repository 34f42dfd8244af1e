"""Issue 14 item 7: any exception nobody foresaw (a full disk, a permission, a broken pipe, corrupt JSON, a
bug of the lab) is infra-error with a one-line reason: never exit 1 with a traceback, never the kernel's fault."""
from __future__ import annotations

import errno
import json
import signal
from pathlib import Path
from typing import Iterator

import pytest

from lab.cli import main as cli
from lab.core import apt
from lab.core.errors import InfraError, describe_failure
from lab.core.files import write_json_atomic
from lab.core.outcome import Outcome, Verdict, exit_code
from lab.results import layout
from lab.results.kernel_log import SplatPolicy
from lab.results.model import SuiteResult
from lab.results.record import RunRecord
from lab.run.lifecycle import conduct

INFRA = exit_code(Outcome.INFRA_ERROR)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LAB_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("LAB_DEBUG", raising=False)
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("exc, words", [
    (OSError(errno.ENOSPC, "No space left on device", "/results/x/maps.log"), "disk is full"),
    (PermissionError(errno.EACCES, "Permission denied", "/var/cache/lab/keys"), "Permission denied"),
    (BrokenPipeError(errno.EPIPE, "Broken pipe"), "Broken pipe"),
    (json.JSONDecodeError("Expecting value", "", 0), "corrupt JSON"),
    (RuntimeError("a bug"), "the lab failed: RuntimeError: a bug"),
], ids=["disk full", "permission", "broken pipe", "corrupt json", "a bug"])
def test_any_exception_is_one_line_of_infra_error(exc: Exception, words: str, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(series: str, flavour: str) -> tuple[str, str]:
        raise exc

    monkeypatch.setattr(apt, "resolve_kernel_package", fail)
    assert cli.main(["kernel", "fetch", "debian:6.1"]) == INFRA
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("lab: infrastructure error: ") and words in lines[0]


def test_lab_debug_adds_the_traceback(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_DEBUG", "1")
    monkeypatch.setattr(apt, "resolve_kernel_package", lambda s, f: 1 / 0)
    assert cli.main(["kernel", "fetch", "debian:6.1"]) == INFRA
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.strip().splitlines()[-1].startswith("lab: infrastructure")


def test_the_one_line_names_the_host_not_the_kernel() -> None:
    assert describe_failure(OSError(errno.EDQUOT, "Disk quota exceeded", "/r")) == \
        "the host's disk is full: Disk quota exceeded (/r)"
    assert describe_failure(KeyError("x")).startswith("the lab failed: KeyError")


def test_an_unforeseen_failure_in_a_run_is_recorded_with_its_traceback(tmp_path: Path) -> None:
    record = RunRecord.create(tmp_path, "debian:6.1", {"kernel": "debian:6.1"})

    def stages(suites: list[SuiteResult]) -> Verdict:
        raise OSError(errno.ENOSPC, "No space left on device", str(record.directory / "maps.log"))

    with pytest.raises(OSError) as caught:
        conduct(record, stages, policy=SplatPolicy())
    metadata = json.loads((record.directory / layout.METADATA).read_text())
    assert metadata["outcome"] == "infra-error"
    assert metadata["reason"].startswith("the host's disk is full: No space left on device")
    traceback_file = record.directory / layout.TRACEBACK
    assert "OSError" in traceback_file.read_text()
    assert f"traceback: {traceback_file}" in caught.value.__notes__


def test_a_run_whose_disk_refuses_the_outcome_still_raises_the_first_failure(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    record = RunRecord.create(tmp_path, "debian:6.1", {})

    def refuse(verdict: Verdict) -> None:
        raise InfraError("cannot write metadata.json: No space left on device")

    monkeypatch.setattr(record, "finish", refuse)

    def stages(suites: list[SuiteResult]) -> Verdict:
        raise RuntimeError("the first failure")

    with pytest.raises(RuntimeError, match="the first failure"):
        conduct(record, stages, policy=SplatPolicy())


def test_a_json_file_that_no_longer_fits_beside_itself_is_rewritten_in_place(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "metadata.json"
    write_json_atomic(path, {"outcome": None})
    real_write_text = Path.write_text

    def full_disk(self: Path, text: str, *args: object, **kwargs: object) -> int:
        if self.name.endswith(".tmp"):
            real_write_text(self, text[:10])  # the disk took part of it
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, text)

    monkeypatch.setattr(Path, "write_text", full_disk)
    write_json_atomic(path, {"outcome": "infra-error", "reason": "the host's disk is full"})
    assert json.loads(path.read_text())["outcome"] == "infra-error"
    assert [p.name for p in tmp_path.iterdir()] == ["metadata.json"]  # no copy left beside it


def test_a_json_file_that_cannot_be_written_is_infra_error(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="cannot write"):
        write_json_atomic(tmp_path / "no-such-dir" / "metadata.json", {})
