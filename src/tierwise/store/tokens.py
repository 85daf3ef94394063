"""API tokens: random secrets shown once; only their sha256 is stored.

Looking a token up by its hash means the secret is never compared byte by byte, so response
times reveal nothing about how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tierwise.core.errors import AuthError, InvalidInputError, NotFoundError
from tierwise.store.audit import audit
from tierwise.store.models import ApiToken, User, utcnow

TOKEN_PREFIX = "tw_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""last_used_at is only rewritten when older than this, so busy clients do not write per call."""


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    session: Session,
    user: User,
    name: str,
    ttl_days: int | None = 90,
    *,
    now: datetime | None = None,
) -> str:
    """A new token for `user`; the plaintext is returned once and never stored."""
    if ttl_days is not None and ttl_days <= 0:
        raise InvalidInputError("a token must live at least one day (or never expire)")
    now = now or utcnow()
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=name[:64],
        token_hash=hash_secret(secret),
        prefix=secret[:8],
        created_at=now,
        expires_at=now + timedelta(days=ttl_days) if ttl_days is not None else None,
    )
    session.add(token)
    session.flush()
    audit(session, user.username, "token_create", f"token:{token.id}", ttl_days=ttl_days)
    return secret


def user_for_token(session: Session, plaintext: str, *, now: datetime | None = None) -> User:
    """The enabled owner of a live token; AuthError for unknown, expired or revoked tokens."""
    now = now or utcnow()
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_secret(plaintext))
    ).one_or_none()
    if row is None:
        raise AuthError("invalid API token")
    token, user = row
    if token.revoked_at is not None:
        raise AuthError(f"API token {token.prefix}… was revoked")
    if token.expires_at is not None and token.expires_at <= now:
        raise AuthError(f"API token {token.prefix}… expired; create a new one")
    if user.disabled:
        raise AuthError(f"user {user.username!r} is disabled")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
        session.flush()
    return user


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(
        session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    )


def revoke_token(
    session: Session, token_id: int, *, actor: str, now: datetime | None = None
) -> ApiToken:
    """Revoke at once; revoking twice keeps the first time."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFoundError(f"no API token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = now or utcnow()
        audit(session, actor, "token_revoke", f"token:{token.id}")
    return token
