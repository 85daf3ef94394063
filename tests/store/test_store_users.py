"""Users: creation, argon2id sign-in, throttling, disabling, rehashing and audited role changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from tierwise.core.errors import (
    AuthError,
    ConflictError,
    InvalidInputError,
    PermissionDeniedError,
    ThrottledError,
)
from tierwise.store.audit import audit_entries
from tierwise.store.models import LoginAttempt, WebSession
from tierwise.store.users import (
    MAX_FAILURES,
    THROTTLE_WINDOW,
    authenticate,
    change_password,
    create_user,
    disable_user,
    list_users,
    set_role,
)
from tierwise.store.web_sessions import create_web_session

T0 = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


@pytest.fixture
def alice(session, hasher):
    user, _ = create_user(session, "Alice", "analyst", PASSWORD, hasher=hasher)
    session.commit()
    return user


def test_create_user_generates_a_strong_password_once(session, hasher):
    user, generated = create_user(session, "Bob", "manager", team="east", hasher=hasher)
    session.commit()
    assert generated is not None and len(generated) >= 20
    assert user.username == "bob" and user.display_name == "Bob" and user.team == "east"
    assert user.password_hash.startswith("$argon2id$") and generated not in user.password_hash
    assert authenticate(session, "BOB", generated, "10.0.0.1", hasher=hasher).id == user.id
    _, given = create_user(session, "carol", "agent", "long enough pw", hasher=hasher)
    assert given is None


def test_create_user_refuses_duplicates_bad_roles_and_short_passwords(session, hasher, alice):
    with pytest.raises(ConflictError):
        create_user(session, "ALICE", "agent", hasher=hasher)
    with pytest.raises(InvalidInputError, match="unknown role"):
        create_user(session, "dave", "boss", hasher=hasher)
    with pytest.raises(InvalidInputError, match="at least"):
        create_user(session, "dave", "agent", "short", hasher=hasher)
    with pytest.raises(InvalidInputError, match="username"):
        create_user(session, "has space", "agent", hasher=hasher)


def test_wrong_password_and_unknown_user_get_the_same_error(session, hasher, alice):
    for name, password in (("alice", "wrong password"), ("nobody", PASSWORD)):
        with pytest.raises(AuthError, match="wrong username or password"):
            authenticate(session, name, password, "10.0.0.1", hasher=hasher, now=T0)
    failed = audit_entries(session, action="login_failed")
    assert {e.target for e in failed} == {"alice", "nobody"}
    assert all(e.detail["why"] == "bad_credentials" for e in failed)


def test_throttle_refuses_even_the_right_password_until_the_window_passes(session, hasher, alice):
    for i in range(MAX_FAILURES):
        with pytest.raises(AuthError):
            authenticate(
                session, "alice", "nope", "10.0.0.1", hasher=hasher, now=T0 + timedelta(minutes=i)
            )
    later = T0 + timedelta(minutes=MAX_FAILURES)
    with pytest.raises(ThrottledError, match="try again in"):
        authenticate(session, "alice", PASSWORD, "10.0.0.2", hasher=hasher, now=later)
    # refused attempts are not counted, so the window ends THROTTLE_WINDOW after the first failure
    after = T0 + THROTTLE_WINDOW + timedelta(seconds=1)
    assert authenticate(session, "alice", PASSWORD, "10.0.0.2", hasher=hasher, now=after).id
    assert audit_entries(session, action="login")[0].detail == {"ip": "10.0.0.2"}


def test_throttle_by_address_across_usernames(session, hasher, alice):
    for i in range(MAX_FAILURES):
        with pytest.raises(AuthError):
            authenticate(session, f"guess{i}", "pw", "203.0.113.9", hasher=hasher, now=T0)
    with pytest.raises(ThrottledError):
        authenticate(session, "alice", PASSWORD, "203.0.113.9", hasher=hasher, now=T0)
    assert authenticate(session, "alice", PASSWORD, "10.0.0.1", hasher=hasher, now=T0).id


def test_success_clears_the_username_failures(session, hasher, alice):
    for i in range(MAX_FAILURES - 1):
        with pytest.raises(AuthError):
            authenticate(session, "alice", "nope", f"10.0.0.{i}", hasher=hasher, now=T0)
    authenticate(session, "alice", PASSWORD, "10.0.1.1", hasher=hasher, now=T0)
    with pytest.raises(AuthError) as raised:
        authenticate(session, "alice", "nope", "10.0.2.1", hasher=hasher, now=T0)
    assert not isinstance(raised.value, ThrottledError)


def test_failed_attempts_survive_the_callers_rollback(session, hasher, alice):
    with pytest.raises(AuthError):
        authenticate(session, "alice", "nope", "10.0.0.1", hasher=hasher, now=T0)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(LoginAttempt)) == 1


def test_disabled_users_are_refused_and_lose_their_sessions(session, hasher, alice):
    admin, _ = create_user(session, "root", "admin", hasher=hasher)
    create_web_session(session, alice)
    disable_user(session, admin, "Alice")
    session.commit()
    assert session.scalar(select(func.count()).select_from(WebSession)) == 0
    with pytest.raises(AuthError, match="disabled"):
        authenticate(session, "alice", PASSWORD, "10.0.0.1", hasher=hasher)
    assert [u.username for u in list_users(session, include_disabled=False)] == ["root"]
    assert [e.target for e in audit_entries(session, action="user_disable")] == ["alice"]


def test_sign_in_rehashes_when_parameters_change(session, hasher, alice):
    stronger = PasswordHasher(time_cost=2, memory_cost=128, parallelism=1)
    assert stronger.check_needs_rehash(alice.password_hash)
    authenticate(session, "alice", PASSWORD, "10.0.0.1", hasher=stronger)
    session.refresh(alice)
    assert not stronger.check_needs_rehash(alice.password_hash)
    assert authenticate(session, "alice", PASSWORD, "10.0.0.1", hasher=stronger).id == alice.id


def test_set_role_is_for_admins_audited_and_keeps_an_admin(session, hasher, alice):
    admin, _ = create_user(session, "root", "admin", hasher=hasher)
    session.commit()
    with pytest.raises(PermissionDeniedError):
        set_role(session, alice, "alice", "admin")
    denied = audit_entries(session, action="denied")
    assert [(e.actor, e.detail["attempted"]) for e in denied] == [("alice", "role_change")]

    user = set_role(session, admin, "ALICE", "manager", team="north")
    assert (user.role, user.team) == ("manager", "north")
    change = audit_entries(session, action="role_change")[0]
    assert (change.actor, change.target) == ("root", "alice")
    assert change.detail == {"old": "analyst", "new": "manager", "team": "north"}
    with pytest.raises(ConflictError, match="last enabled admin"):
        set_role(session, admin, "root", "analyst")


def test_change_password_ends_web_sessions(session, hasher, alice):
    create_web_session(session, alice)
    before = alice.password_changed_at
    change_password(session, alice, "a brand new password", hasher=hasher)
    session.commit()
    assert alice.password_changed_at > before
    assert session.scalar(select(func.count()).select_from(WebSession)) == 0
    assert authenticate(session, "alice", "a brand new password", "10.0.0.1", hasher=hasher)
