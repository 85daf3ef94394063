"""API tokens and web sessions: stored hashed, refused when wrong, expired, revoked or idle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tierwise.core.errors import AuthError, PermissionDeniedError
from tierwise.store.models import ApiToken, WebSession
from tierwise.store.tokens import (
    LAST_USED_RESOLUTION,
    create_token,
    list_tokens,
    revoke_token,
    user_for_token,
)
from tierwise.store.users import create_user
from tierwise.store.web_sessions import (
    IDLE_TIMEOUT,
    check_csrf,
    create_web_session,
    end_web_session,
    purge_web_sessions,
    web_session_user,
)

T0 = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def user(session, hasher):
    u, _ = create_user(session, "ana", "analyst", hasher=hasher)
    session.commit()
    return u


def test_token_is_shown_once_and_stored_as_a_hash(session, user):
    secret = create_token(session, user, "laptop", ttl_days=30, now=T0)
    session.commit()
    (token,) = list_tokens(session, user)
    assert token.prefix == secret[:8] and len(token.token_hash) == 64
    assert secret not in (token.token_hash, token.name)
    assert token.expires_at == T0 + timedelta(days=30)
    assert user_for_token(session, secret, now=T0 + timedelta(days=1)).id == user.id
    assert token.last_used_at == T0 + timedelta(days=1)
    user_for_token(session, secret, now=T0 + timedelta(days=1) + LAST_USED_RESOLUTION / 2)
    assert token.last_used_at == T0 + timedelta(days=1)


def test_wrong_expired_and_revoked_tokens_are_refused(session, user):
    secret = create_token(session, user, "ci", ttl_days=1, now=T0)
    forever = create_token(session, user, "bot", ttl_days=None, now=T0)
    session.commit()
    with pytest.raises(AuthError, match="invalid"):
        user_for_token(session, secret[:-1] + ("A" if secret[-1] != "A" else "B"), now=T0)
    with pytest.raises(AuthError, match="expired"):
        user_for_token(session, secret, now=T0 + timedelta(days=1))
    assert user_for_token(session, forever, now=T0 + timedelta(days=3650)).id == user.id
    token_id = session.scalar(select(ApiToken.id).where(ApiToken.name == "bot"))
    revoke_token(session, token_id, actor="ana", now=T0)
    session.commit()
    with pytest.raises(AuthError, match="revoked"):
        user_for_token(session, forever, now=T0)


def test_tokens_of_disabled_users_are_refused(session, user):
    secret = create_token(session, user, "x")
    user.disabled = True
    session.commit()
    with pytest.raises(AuthError, match="disabled"):
        user_for_token(session, secret)


def test_web_session_lookup_csrf_and_sign_out(session, user):
    new = create_web_session(session, user, now=T0)
    session.commit()
    row = session.get(WebSession, session.scalar(select(WebSession.id)))
    assert row is not None and row.id != new.secret and len(row.id) == 64
    found, web = web_session_user(session, new.secret, now=T0 + timedelta(minutes=5))
    assert found.id == user.id and web.last_seen_at == T0 + timedelta(minutes=5)
    check_csrf(web, new.csrf_token)
    for bad in (None, "", new.csrf_token[:-1]):
        with pytest.raises(PermissionDeniedError, match="CSRF"):
            check_csrf(web, bad)
    with pytest.raises(AuthError, match="not signed in"):
        web_session_user(session, "not-a-session", now=T0)
    end_web_session(session, new.secret)
    with pytest.raises(AuthError, match="not signed in"):
        web_session_user(session, new.secret, now=T0)


def test_web_sessions_expire_when_idle_or_old(session, user):
    idle = create_web_session(session, user, now=T0)
    old = create_web_session(session, user, lifetime=timedelta(hours=1), now=T0)
    session.commit()
    web_session_user(session, old.secret, now=T0 + timedelta(minutes=50))
    with pytest.raises(AuthError, match="expired"):
        web_session_user(session, old.secret, now=T0 + timedelta(minutes=61))
    with pytest.raises(AuthError, match="expired"):
        web_session_user(session, idle.secret, now=T0 + IDLE_TIMEOUT + timedelta(seconds=1))
    assert purge_web_sessions(session, now=T0 + timedelta(hours=3)) == 2
