"""Users, passwords (argon2id) and sign-in throttling.

Security events (failed or throttled sign-ins, refused admin actions) are committed before the
error is raised: a caller that rolls back on the exception must not erase the trace.
"""

from __future__ import annotations

import math
import re
import secrets
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from tierwise.core.errors import (
    AuthError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ThrottledError,
)
from tierwise.store.audit import audit
from tierwise.store.models import LoginAttempt, Role, User, WebSession, utcnow

MAX_FAILURES = 5
"""Failed sign-ins per username or per address tolerated within `THROTTLE_WINDOW`."""
THROTTLE_WINDOW = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10

_USERNAME = re.compile(r"[^\s/\\:]{2,64}")


def default_hasher() -> PasswordHasher:
    """argon2id with the library's RFC 9106 parameters; raising them rehashes on next sign-in."""
    return PasswordHasher()


@cache
def _dummy_hash(time_cost: int, memory_cost: int, parallelism: int) -> str:
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
    return hasher.hash(secrets.token_urlsafe(16))


def _verify(hasher: PasswordHasher, stored: str | None, password: str) -> bool:
    """Always runs one argon2 verification, so unknown users cost as much as known ones."""
    if stored is None:
        stored = _dummy_hash(hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    try:
        return hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def normalise_username(username: str) -> str:
    """Case-folded NFKC: `Alice`, `ALICE` and full-width `Ａｌｉｃｅ` are one user."""
    return unicodedata.normalize("NFKC", username).strip().casefold()


def generate_password() -> str:
    """24 URL-safe characters (144 random bits), shown once to whoever created the user."""
    return secrets.token_urlsafe(18)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise InvalidInputError(f"unknown role {role!r}; choose one of {roles}") from None


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == normalise_username(username)))
    if user is None:
        raise NotFoundError(f"no user named {username!r}")
    return user


def list_users(session: Session, *, include_disabled: bool = True) -> list[User]:
    query = select(User).order_by(User.username)
    if not include_disabled:
        query = query.where(User.disabled.is_(False))
    return list(session.scalars(query))


def create_user(
    session: Session,
    username: str,
    role: str,
    password: str | None = None,
    team: str | None = None,
    *,
    display_name: str | None = None,
    actor: str = "system",
    hasher: PasswordHasher | None = None,
) -> tuple[User, str | None]:
    """Add a user; without `password` a strong one is generated and returned (else None)."""
    name = normalise_username(username)
    if not _USERNAME.fullmatch(name):
        raise InvalidInputError(f"username {username!r} must be 2-64 characters without spaces")
    checked_role = _role(role)
    generated = None
    if password is None:
        password = generated = generate_password()
    _check_password(password)
    if session.scalar(select(User.id).where(User.username == name)) is not None:
        raise ConflictError(f"user {name!r} already exists")
    now = utcnow()
    user = User(
        username=name,
        display_name=display_name or username.strip(),
        role=checked_role.value,
        team=team,
        password_hash=(hasher or default_hasher()).hash(password),
        disabled=False,
        created_at=now,
        password_changed_at=now,
    )
    session.add(user)
    session.flush()
    audit(session, actor, "user_create", name, role=checked_role.value, team=team)
    return user, generated


def _failures_block_until(
    session: Session, condition: ColumnElement[bool], since: datetime
) -> datetime | None:
    """When the oldest of the last MAX_FAILURES failures leaves the window, or None if fewer."""
    times: Sequence[datetime] = session.scalars(
        select(LoginAttempt.at)
        .where(condition, LoginAttempt.ok.is_(False), LoginAttempt.at > since)
        .order_by(LoginAttempt.at.desc())
        .limit(MAX_FAILURES)
    ).all()
    return times[-1] + THROTTLE_WINDOW if len(times) >= MAX_FAILURES else None


def throttled_until(session: Session, username: str, ip: str, now: datetime) -> datetime | None:
    """When sign-ins for this username or from this address are allowed again (None: now).

    A successful sign-in clears the username's earlier failures, not the address's: one valid
    account must not let an address keep guessing other users' passwords.
    """
    name = normalise_username(username)[:64]
    window_start = now - THROTTLE_WINDOW
    last_ok = session.scalar(
        select(func.max(LoginAttempt.at)).where(
            LoginAttempt.username == name, LoginAttempt.ok.is_(True)
        )
    )
    since_user = max(window_start, last_ok) if last_ok else window_start
    blocks = [
        _failures_block_until(session, LoginAttempt.username == name, since_user),
        _failures_block_until(session, LoginAttempt.ip == ip[:64], window_start),
    ]
    return max((b for b in blocks if b is not None), default=None)


def authenticate(
    session: Session,
    username: str,
    password: str,
    ip: str,
    *,
    hasher: PasswordHasher | None = None,
    now: datetime | None = None,
) -> User:
    """The user if the password is right and the account enabled; commits the attempt.

    Unknown users and wrong passwords get the same error after the same argon2 work. After
    MAX_FAILURES failures within THROTTLE_WINDOW for the username or the address, even the right
    password is refused until the window passes; refused attempts do not extend it.
    """
    hasher = hasher or default_hasher()
    now = now or utcnow()
    name = normalise_username(username)[:64]
    until = throttled_until(session, name, ip, now)
    if until is not None:
        audit(session, name, "login_failed", name, ip=ip, why="throttled", at=now)
        session.commit()
        seconds = max(1, math.ceil((until - now).total_seconds()))
        raise ThrottledError(
            f"too many failed sign-ins; try again in {math.ceil(seconds / 60)} minute(s)",
            retry_after_s=seconds,
        )
    user = session.scalar(select(User).where(User.username == name))
    verified = _verify(hasher, user.password_hash if user else None, password)
    ok = verified and user is not None and not user.disabled
    session.add(LoginAttempt(username=name, ip=ip[:64], at=now, ok=ok))
    if not ok or user is None:
        why = "disabled" if verified else "bad_credentials"
        audit(session, name, "login_failed", name, ip=ip, why=why, at=now)
        session.commit()
        if verified:
            raise AuthError(f"user {name!r} is disabled; ask an administrator")
        raise AuthError("wrong username or password")
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    audit(session, name, "login", name, ip=ip, at=now)
    session.commit()
    return user


def change_password(
    session: Session,
    user: User,
    new_password: str,
    *,
    actor: str | None = None,
    hasher: PasswordHasher | None = None,
) -> None:
    """Set a new password and end the user's web sessions (signed in elsewhere with the old)."""
    _check_password(new_password)
    user.password_hash = (hasher or default_hasher()).hash(new_password)
    user.password_changed_at = utcnow()
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    audit(session, actor or user.username, "password_change", user.username)


def _require_admin(session: Session, actor: User, action: str, target: str) -> None:
    if actor.role != Role.ADMIN or actor.disabled:
        audit(session, actor.username, "denied", target, attempted=action)
        session.commit()
        raise PermissionDeniedError(f"{action} needs the admin role")


def _keep_an_admin(session: Session, user: User) -> None:
    if user.role != Role.ADMIN or user.disabled:
        return
    admins = session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.ADMIN.value, User.disabled.is_(False))
    )
    if (admins or 0) <= 1:
        raise ConflictError(
            f"{user.username!r} is the last enabled admin; promote another one first"
        )


def set_role(
    session: Session, actor: User, username: str, role: str, *, team: str | None = None
) -> User:
    """Change a user's role (and team when given); admins only, audited."""
    _require_admin(session, actor, "role_change", normalise_username(username))
    user = get_user(session, username)
    new_role = _role(role)
    if new_role != Role.ADMIN:
        _keep_an_admin(session, user)
    old = user.role
    user.role = new_role.value
    if team is not None:
        user.team = team
    audit(
        session,
        actor.username,
        "role_change",
        user.username,
        old=old,
        new=new_role.value,
        team=user.team,
    )
    return user


def disable_user(session: Session, actor: User, username: str) -> User:
    """Block sign-in, API tokens and web sessions of a user; admins only, audited."""
    _require_admin(session, actor, "user_disable", normalise_username(username))
    user = get_user(session, username)
    _keep_an_admin(session, user)
    user.disabled = True
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    audit(session, actor.username, "user_disable", user.username)
    return user
