"""`tierwise playbook check|apply` as a user runs them: a real process, exit codes, messages."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from tests.strategy.conftest import profiles

from tierwise.core.settings import Settings
from tierwise.services.serving import opened_store
from tierwise.store.publish import publish_run

pytestmark = pytest.mark.slow


def tierwise(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_check_reports_each_bad_entry_with_file_line_and_column(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "rules:\n  - name: a\n    when: tier = 'gold'\n    service_level: vip\n"
        "  - name: b\n    service_level: premium\n",
        encoding="utf-8",
    )
    done = tierwise("playbook", "check", str(bad), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{bad}:3:18: 'gold' is not a value of tier" in done.stderr
    assert f"{bad}:6:20: service_level 'premium' is not one of" in done.stderr
    shadowed = tmp_path / "shadowed.yaml"
    shadowed.write_text(
        'rules:\n  - {name: a, when: "clv > 1", service_level: vip}\n'
        '  - {name: b, when: "clv > 2", service_level: basic}\n',
        encoding="utf-8",
    )
    done = tierwise("playbook", "check", str(shadowed), cwd=tmp_path)
    assert done.returncode == 1 and "rules that never apply: b" in done.stderr


def test_apply_shows_customers_per_rule_and_opens_tasks(tmp_path: Path):
    (tmp_path / "tierwise.toml").write_text('[store]\nurl = "sqlite:///store.db"\n')
    settings = Settings.load(tmp_path / "tierwise.toml")
    with opened_store(settings) as store:
        publish_run(store.write, "run-1", date(2024, 12, 31), profiles(120))
    dry = tierwise("playbook", "apply", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and "vip_winback" in dry.stdout and "(no rule)" in dry.stdout
    done = tierwise("--json", "playbook", "apply", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["customers"] == 120 and body["profiles_updated"] == 120
    assert sum(r["customers"] for r in body["rules"][:-1]) == 120  # the last row: churn warnings
    assert sum(r["tasks_created"] for r in body["rules"]) > 0
