"""`--test` (lab/run/selection.py): names checked against the suites as collected on the host, a
name without parameters standing for all of them, and the suite command running only those."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from lab.cli import main as cli
from lab.core.errors import UserError
from lab.run import selection
from lab.run import series
from lab.run import suites as runner

HASH = "maps/test_maps_hash.py::test_update_noexist[HASH]"


def test_an_exact_name_and_a_name_without_parameters_are_selected() -> None:
    chosen = selection.select([HASH, "pin/test_pin_tree.py::test_unlink_and_rmdir", HASH])
    assert chosen.suites == ["maps", "pin"]
    assert chosen.of("maps") == ("test_maps_hash.py::test_update_noexist[HASH]",)
    assert chosen.names == [HASH, "pin/test_pin_tree.py::test_unlink_and_rmdir"]
    assert selection.select(["maps/test_maps_hash.py::test_update_noexist"]).of("maps")


@pytest.mark.parametrize("text, says", [
    ("maps", "expected SUITE/FILE::TEST"),
    ("nosuite/test_x.py::test_y", "no suite 'nosuite'"),
    ("maps/test_maps_hash.py::test_update_noexis[HASH]", "did you mean maps/test_maps_hash.py::test_update_noexist[HASH]"),
])
def test_a_name_no_suite_has_is_refused_with_the_nearest(text: str, says: str) -> None:
    with pytest.raises(UserError, match=re.escape(says)):
        selection.select([text])


def test_bisect_needs_exactly_one_test() -> None:
    assert selection.one_test(HASH) == ("maps", "test_maps_hash.py::test_update_noexist[HASH]")
    with pytest.raises(UserError, match=r"names \d+ tests"):
        selection.one_test("maps/test_maps_hash.py::test_update_noexist")


def test_the_series_command_runs_only_the_selected_node_ids_with_the_repetition() -> None:
    picked = {"maps": ("test_maps_hash.py::test_update_noexist[HASH]",)}
    command = series.series_command(["maps", "pin"], 60, only=lambda name: picked.get(name, ()), repeat=2)
    assert "LAB_REPEAT=2 python3 labsuites.py" in command
    spec = json.loads(shlex.split(command.split("&&", 1)[1])[-1])
    assert [suite["args"][-1] for suite in spec["suites"]] == ["suites/maps/test_maps_hash.py::test_update_noexist[HASH]",
                                                                 "suites/pin"]
    assert "LAB_REPEAT" not in series.series_command(["maps"], 60)


def test_a_tree_of_the_users_has_its_own_suites(tmp_path: Path) -> None:
    for name in runner.LAB_MODULES:
        (tmp_path / name).write_text("")
    (tmp_path / "suites" / "flaky").mkdir(parents=True)
    (tmp_path / "suites" / "flaky" / "test_f.py").write_text("def test_a():\n    pass\n")
    (tmp_path / "suites" / "maps").mkdir()
    (tmp_path / "suites" / "maps" / "test_m.py").write_text("def test_b():\n    pass\n")
    tree = runner.tree_at(tmp_path)
    assert list(tree.suites) == ["maps", "flaky"]
    assert runner.parse_suites("flaky", tree) == ["flaky"]
    assert selection.select(["flaky/test_f.py::test_a"], tree).of("flaky") == ("test_f.py::test_a",)
    with pytest.raises(UserError, match="no suites/<name>/test_"):
        runner.tree_at(tmp_path / "suites" / "flaky")
    (tmp_path / "labsuites.py").unlink()
    with pytest.raises(UserError, match="no labsuites.py in it"):
        runner.tree_at(tmp_path)


@pytest.mark.parametrize("argv, says", [
    (["run", "--test", "maps/test_nope.py::test_x"], "the maps suite has no such test"),
    (["run", "--suite", "pin", "--test", HASH], "--suite pin beside --test"),
    (["run", "--repeat", "2", "--repetition", "1"], "--repetition is one run of a --repeat"),
    (["run", "--guest-tests", "/nonexistent-tree"], "no suites/<name>/test_"),
])
def test_bad_selections_are_one_line_and_exit_2(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
