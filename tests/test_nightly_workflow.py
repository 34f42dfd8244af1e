"""The nightly workflow (.github/workflows/nightly.yml): well-formed, and its lab commands are
ones today's `lab` accepts, so the workflow cannot drift from the CLI unnoticed."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from lab.cli import main as cli
from lab.cli import matrix as matrix_cli

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "nightly.yml"


def workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def test_it_runs_nightly_and_on_demand() -> None:
    # YAML 1.1 reads the key `on` as True.
    triggers = workflow().get("on") or workflow().get(True)
    assert triggers["schedule"][0]["cron"].count(" ") == 4
    assert "workflow_dispatch" in triggers


def lab_commands() -> list[list[str]]:
    commands = []
    for job in workflow()["jobs"].values():
        for step in job["steps"]:
            for line in str(step.get("run", "")).splitlines():
                if line.strip().startswith(".venv/bin/lab "):
                    commands.append(shlex.split(line)[1:])
    return commands


def test_the_matrix_covers_both_debian_kernels() -> None:
    commands = lab_commands()
    assert [c[0] for c in commands] == ["matrix"]
    args = cli.build_parser().parse_args(commands[0])
    assert args.func is matrix_cli.cmd_matrix
    assert args.kernel == ["debian:6.1", "debian:6.12"]


def test_the_report_is_kept_whatever_the_outcome() -> None:
    steps = workflow()["jobs"]["matrix"]["steps"]
    upload = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert len(upload) == 1 and upload[0]["if"] == "always()"
    results = [c[c.index("--results") + 1] for c in lab_commands() if "--results" in c]
    assert results and upload[0]["with"]["path"].rstrip("/") == results[0]


@pytest.mark.parametrize("step", ["make setup"])
def test_setup_is_the_readmes(step: str) -> None:
    runs = [s.get("run", "") for s in workflow()["jobs"]["matrix"]["steps"]]
    assert step in runs
