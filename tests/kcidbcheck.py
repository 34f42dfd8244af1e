"""What the tests of `lab kcidb` share: its document as the command writes it, checked by the
kcidb-io package's schema here too (not only by the lab), and KCIDB's patchset hash computed the
way its schema says, with the shell command it gives."""
from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

from e2ehelpers import lab
from kcidb_io.schema import LATEST


def kcidb_document(*runs: Path | str, origin: str = "bpf_kernel_lab") -> dict[str, Any]:
    done = lab("kcidb", *map(str, runs), "--origin", origin)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    LATEST.validate(data)
    return data


def schema_patchset_hash(patches: list[Path]) -> str:
    """KCIDB's definition: "sha256sum *.patch | cut -c-64 | sha256sum | cut -c-64", in series order."""
    files = " ".join(shlex.quote(str(p)) for p in patches)
    return subprocess.run(f"sha256sum {files} | cut -c-64 | sha256sum | cut -c-64", shell=True, check=True,
                          capture_output=True, text=True).stdout.strip()


def check_run_document(run: Path) -> None:
    """A real run as KCIDB: one test per test record, one per suite and the boot (PASS), statuses as
    results.json counts them, and the same document written again (stable ids: resubmitting is idempotent)."""
    data = kcidb_document(run)
    results = json.loads((run / "results.json").read_text())
    assert len(data["checkouts"]) == len(data["builds"]) == 1
    assert len(data["tests"]) == len(results["tests"]) + len(results["suites"]) + 1
    (boot,) = [t for t in data["tests"] if t["path"] == "bpf_kernel_lab.boot"]
    assert boot["status"] == "PASS" and boot["duration"] > 0
    status = {"PASS": "passed", "FAIL": "failed", "ERROR": "error", "SKIP": "skipped"}
    by_path = {t["path"]: status[t["status"]] for t in data["tests"] if t["path"].count(".") > 1}
    assert sorted(by_path.values()) == sorted(t["outcome"] for t in results["tests"])
    assert {t["path"] for t in data["tests"] if t["path"].count(".") == 1} == {
        f"bpf_kernel_lab.{s['suite']}" for s in results["suites"]} | {"bpf_kernel_lab.boot"}
    assert kcidb_document(run) == data
