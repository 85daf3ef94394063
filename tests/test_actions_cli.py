"""`tierwise tasks|complaints|membership|campaign` on a real project: JSON output for scripts,
and a domain error as one stderr line with exit code 1."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.test_actions_membership import Y_END, write_project
from typer.testing import CliRunner

from tierwise.cli.main import app
from tierwise.services.run import run


@pytest.fixture
def project(tmp_path: Path) -> Path:
    settings = write_project(tmp_path)
    run(settings, as_of=Y_END)
    return tmp_path / "tierwise.toml"


def cli(config: Path, *args: str):
    result = CliRunner().invoke(app, ["--config", str(config), "--json", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output)


def test_actions_from_the_command_line(project: Path, tmp_path: Path):
    levels = cli(project, "membership", "levels")
    assert {x["code"]: x["customers"] for x in levels["levels"]} == {
        "regular": 2,
        "silver": 3,
        "gold": 2,
        "diamond": 0,
    }
    assert cli(project, "membership", "show", "A")["level"] == "silver"
    assert cli(project, "membership", "history")[0]["joined"] == 7

    added = cli(project, "tasks", "add", "A", "--reason", "birthday", "--note", "生日")
    assert added["created"] and added["task"]["queue"] == "unassigned"  # ag1 has no sign-in
    task_id = added["task"]["id"]
    assert cli(project, "tasks", "list", "--status", "open")["total"] == 1
    done = cli(project, "tasks", "done", str(task_id), "--outcome", "reached")
    assert (done["status"], done["closed_by"]) == ("done", "cli")

    ticket = cli(project, "complaints", "add", "C", "--category", "delivery")
    assert ticket["status"] == "open" and ticket["created_by"] == "cli"
    resolved = cli(
        project, "complaints", "set-status", str(ticket["id"]), "resolved", "--resolution", "补发"
    )
    assert resolved["status"] == "resolved" and resolved["resolution_sla"] == "met"
    sla = cli(project, "complaints", "sla")
    assert sla["overall"]["tickets"] == 1 and sla["open"] == 0
    assert cli(project, "complaints", "list", "--category", "delivery")["total"] == 1

    campaign = cli(
        project,
        "campaign",
        "create",
        "--name",
        "新年",
        "--action",
        "券",
        "--start",
        "2025-01-01",
        "--end",
        "2025-01-31",
        "--purpose",
        "service",
        "--control-share",
        "0.5",
        "--seed",
        "cli",
    )
    assert campaign["treatment"] + campaign["control"] == 7
    out = tmp_path / "targets.csv"
    exported = cli(project, "campaign", "export", str(campaign["id"]), "--out", str(out))
    with out.open(encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == exported["rows"] == campaign["treatment"]
    effect = cli(project, "campaign", "effect", str(campaign["id"]))
    assert effect["complete"] is True
    assert effect["report"]["treated"] == campaign["treatment"]
    assert [c["id"] for c in cli(project, "campaign", "list")] == [campaign["id"]]


def test_a_domain_error_is_one_line_and_exit_code_1(project: Path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tierwise",
            "--config",
            str(project),
            "tasks",
            "done",
            "999",
            "--outcome",
            "reached",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "error: no task 999"
