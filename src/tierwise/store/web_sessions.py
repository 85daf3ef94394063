"""Browser sessions: the cookie holds a random secret, the table only its sha256 (the row id).

Each session carries its own CSRF token for form posts. Sessions end at `expires_at` (absolute)
or after `IDLE_TIMEOUT` without a request, whichever comes first.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from tierwise.core.errors import AuthError, PermissionDeniedError
from tierwise.store.models import User, WebSession, utcnow
from tierwise.store.tokens import hash_secret

SESSION_LIFETIME = timedelta(hours=12)
IDLE_TIMEOUT = timedelta(hours=2)
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class NewWebSession:
    """What the browser gets: the cookie secret (never stored) and the CSRF token."""

    secret: str
    csrf_token: str
    expires_at: datetime


def create_web_session(
    session: Session,
    user: User,
    *,
    lifetime: timedelta = SESSION_LIFETIME,
    now: datetime | None = None,
) -> NewWebSession:
    now = now or utcnow()
    secret = secrets.token_urlsafe(32)
    row = WebSession(
        id=hash_secret(secret),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + lifetime,
        last_seen_at=now,
    )
    session.add(row)
    session.flush()
    return NewWebSession(secret, row.csrf_token, row.expires_at)


def web_session_user(
    session: Session, secret: str, *, now: datetime | None = None
) -> tuple[User, WebSession]:
    """The enabled user of a live session, touching last_seen_at; AuthError otherwise."""
    now = now or utcnow()
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.id == hash_secret(secret))
    ).one_or_none()
    if row is None:
        raise AuthError("not signed in")
    web, user = row
    if web.expires_at <= now or now - web.last_seen_at > IDLE_TIMEOUT:
        raise AuthError("session expired; sign in again")
    if user.disabled:
        raise AuthError(f"user {user.username!r} is disabled")
    if now - web.last_seen_at >= LAST_SEEN_RESOLUTION:
        web.last_seen_at = now
        session.flush()
    return user, web


def check_csrf(web: WebSession, token: str | None) -> None:
    """Refuse a state-changing request whose CSRF token is not the session's own."""
    if not token or not hmac.compare_digest(web.csrf_token.encode(), token.encode()):
        raise PermissionDeniedError("missing or wrong CSRF token; reload the page and try again")


def end_web_session(session: Session, secret: str) -> None:
    """Sign out; ending an unknown or already ended session is not an error."""
    session.execute(delete(WebSession).where(WebSession.id == hash_secret(secret)))


def purge_web_sessions(session: Session, *, now: datetime | None = None) -> int:
    """Delete expired and idle sessions; returns how many."""
    now = now or utcnow()
    result = session.execute(
        delete(WebSession).where(
            or_(WebSession.expires_at <= now, WebSession.last_seen_at < now - IDLE_TIMEOUT)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
