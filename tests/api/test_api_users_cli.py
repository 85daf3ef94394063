"""`tierwise users`: the printed password signs in, the listing shows roles, disabling blocks."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from tierwise.cli.main import state
from tierwise.cli.users import users_app
from tierwise.core.errors import AuthError, ConflictError, InvalidInputError
from tierwise.core.settings import Settings
from tierwise.services import serving


@pytest.fixture
def cli(empty_settings: Settings, monkeypatch: pytest.MonkeyPatch):
    """Run `users` commands against this test's store, as `tierwise -c …` would."""
    monkeypatch.setattr(state, "settings", lambda: empty_settings)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(users_app, list(args))

    return invoke


def test_add_prints_a_password_that_signs_in(cli, empty_settings: Settings):
    done = cli("add", "Boss", "--role", "admin", "--display-name", "The Boss")
    assert done.exit_code == 0, done.output
    password = re.search(r"password \(shown only now\): (\S+)", done.output).group(1)
    with serving.opened_store(empty_settings) as store:
        signed = serving.login(store, "boss", password, "127.0.0.1")
    assert (signed.principal.username, signed.principal.role) == ("boss", "admin")
    assert signed.principal.display_name == "The Boss"


def test_list_and_disable(cli, empty_settings: Settings, monkeypatch: pytest.MonkeyPatch):
    assert cli("add", "boss", "--role", "admin").exit_code == 0
    done = cli("add", "ag1", "--role", "agent", "--team", "north")
    password = re.search(r"password \(shown only now\): (\S+)", done.output).group(1)
    monkeypatch.setattr(state, "json", True)
    listed = json.loads(cli("list").output)
    assert [(u["username"], u["role"], u["team"], u["disabled"]) for u in listed] == [
        ("ag1", "agent", "north", False),
        ("boss", "admin", None, False),
    ]
    assert cli("disable", "ag1").exit_code == 0
    with serving.opened_store(empty_settings) as store, pytest.raises(AuthError, match="disabled"):
        serving.login(store, "ag1", password, "127.0.0.1")
    assert [u["disabled"] for u in json.loads(cli("list").output)] == [True, False]


def test_refusals_are_domain_errors(cli):
    """`tierwise` turns these into one stderr line and exit code 1."""
    assert isinstance(cli("add", "x1", "--role", "owner").exception, InvalidInputError)
    assert cli("add", "boss", "--role", "admin").exit_code == 0
    assert isinstance(cli("add", "BOSS", "--role", "agent").exception, ConflictError)
    assert isinstance(cli("disable", "boss").exception, ConflictError)  # the last admin
