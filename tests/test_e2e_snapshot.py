"""End-to-end: guests restored from a snapshot (lab/vm/snapshot.py) are pristine and have random
state of their own, and a damaged snapshot costs one warning and a cold boot, never the run."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from e2ehelpers import lab, no_qemu_left  # noqa: F401 (no_qemu_left: an autouse fixture)

from lab.core.paths import cache_dir
from lab.vm import snapshot

pytestmark = pytest.mark.boot

ORDER_MAP = "/sys/fs/bpf/order"
# 24 keys into a hash map, then its dump: the order is the map's random hash seed's.
HASH_ORDER = (f"bpftool map create {ORDER_MAP} type hash key 4 value 4 entries 64 name order && "
              f"for i in $(seq 1 24); do echo \"map update pinned {ORDER_MAP} key $i 0 0 0 value 0 0 0 0\"; done "
              f"> /tmp/order.batch && bpftool batch file /tmp/order.batch >/dev/null && "
              f"bpftool -j map dump pinned {ORDER_MAP}")
LEAVE = "touch /root/left-behind /tmp/left-behind && date +%s && "
FIND_NOTHING = "! test -e /root/left-behind && ! test -e /tmp/left-behind && ! test -e " + ORDER_MAP + " && date +%s && "


def boot(command: str, *options: str) -> tuple[str, str]:
    done = lab("boot", *options, "--command", command, timeout=900)
    assert done.returncode == 0, f"lab boot failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout, done.stderr


def key_order(dump: str) -> list[int]:
    return [int(entry["key"][0], 16) for entry in json.loads(dump)]


def newest_snapshot() -> snapshot.Snapshot:
    found = [p for p in snapshot.store(cache_dir()).iterdir() if p.is_dir() and not p.name.startswith(".")]
    return snapshot.Snapshot(max(found, key=lambda p: p.stat().st_mtime))


def test_a_restored_guest_is_pristine_and_draws_its_own_random_numbers() -> None:
    boot("true")  # the default guest's snapshot, saved now if there was none
    first_out, first_err = boot(LEAVE + HASH_ORDER)
    second_out, second_err = boot(FIND_NOTHING + HASH_ORDER)
    for err in (first_err, second_err):
        assert "restored 6.1" in err and "warning: snapshot" not in err, err
    # The clock is the host's, not the snapshot's.
    for out in (first_out, second_out):
        assert abs(int(out.splitlines()[0]) - time.time()) < 120, out
    # Same saved memory, yet each run's kernel seeded its hash map differently.
    first, second = key_order(first_out.split("\n", 1)[1]), key_order(second_out.split("\n", 1)[1])
    assert sorted(first) == sorted(second) == list(range(1, 25))
    assert first != second, "two restored guests drew the same hash seed"


def test_no_snapshot_boots_cold_even_when_one_exists() -> None:
    boot("true")
    _, err = boot("true", "--no-snapshot")
    assert "booted 6.1" in err and "restored" not in err, err


@pytest.mark.exclusive  # it damages the snapshot every run of the default guest restores
def test_a_damaged_snapshot_is_one_warning_then_a_cold_boot_that_saves_a_fresh_one(tmp_path: Path) -> None:
    boot("true")
    damaged = newest_snapshot()
    with damaged.state.open("r+b") as state:  # RAM pages in the middle of the state
        state.seek(damaged.state.stat().st_size // 2)
        state.write(b"\xa5" * 4096)
    done = lab("run", "--suite", "pin", results=tmp_path / "first", timeout=900)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: snapshot")]
    assert len(warnings) == 1 and f"snapshot {damaged.key} did not restore" in warnings[0], done.stderr
    (run,) = (tmp_path / "first").iterdir()
    metadata = json.loads((run / "metadata.json").read_text())
    assert metadata["outcome"] == "passed"
    assert metadata["boot"]["mode"] == "cold" and metadata["boot"]["saved"] is True
    assert metadata["boot"]["snapshot"] == damaged.key and "did not restore" in metadata["boot"]["warning"]
    assert any("did not restore" in warning for warning in metadata["warnings"])
    console = (run / "console.log").read_text(errors="replace")
    assert "did not restore" in console and "lab-ready: sshd started" in console
    # The fresh snapshot restores.
    again = lab("run", "--suite", "pin", results=tmp_path / "again", timeout=900)
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    assert "warning: snapshot" not in again.stderr
    (run,) = (tmp_path / "again").iterdir()
    metadata = json.loads((run / "metadata.json").read_text())
    assert metadata["boot"]["mode"] == "restored" and metadata["boot"]["snapshot"] == damaged.key
    assert metadata["outcome"] == "passed" and "warnings" not in metadata
    assert "was restored from it here" in (run / "console.log").read_text(errors="replace")
