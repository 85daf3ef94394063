"""Append-only audit log, hash-chained so that editing or deleting a row is detectable.

Each row's hash is sha256(prev_hash + canonical JSON of at, actor, action, target, detail). Writers
are serialised so the chain never forks: PostgreSQL takes a transaction-scoped advisory lock,
SQLite's write sessions already hold the database write lock (BEGIN IMMEDIATE). Both locks last
until commit, so audit as the last step of a transaction. The chain cannot reveal rows removed
from the very end; keep exported copies if that matters.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tierwise.store.models import AuditEntry, utcnow

GENESIS = "0" * 64
"""prev_hash of the first row."""

_LOCK_KEY = 727_102
"""PostgreSQL advisory lock key serialising audit writers."""

PII_KEY_PARTS = frozenset(
    {
        "name",
        "phone",
        "mobile",
        "tel",
        "telephone",
        "email",
        "mail",
        "address",
        "addr",
        "idcard",
        "birthday",
        "password",
        "passwd",
        "secret",
    }
)
"""Detail keys are refused when any `_`/`-`-separated part is one of these (customer_name...)."""


def _pii_keys(value: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, inner in value.items():
            parts = set(re.split(r"[_\-\s.]+", str(key).lower()))
            if parts & PII_KEY_PARTS or str(key).lower() in {"id_card", "id_number"}:
                found.append(path + str(key))
            found += _pii_keys(inner, f"{path}{key}.")
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for inner in value:
            found += _pii_keys(inner, path)
    return found


def _encode(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"audit detail value {value!r} is not JSON (use str, numbers, lists, dicts)")


def _canonical(value: Any) -> str:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_encode,
    )


def entry_hash(
    prev_hash: str, at: datetime, actor: str, action: str, target: str | None, detail: Any
) -> str:
    """The chain hash of one row; `verify_chain` recomputes it from the stored fields."""
    body = _canonical(
        {"at": at.isoformat(), "actor": actor, "action": action, "target": target, "detail": detail}
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


def audit(
    session: Session,
    actor: str,
    action: str,
    target: str | None = None,
    *,
    at: datetime | None = None,
    **detail: Any,
) -> AuditEntry:
    """Append one entry. `detail` must be JSON and free of PII: keys such as name, phone or
    email raise ValueError, so a careless caller cannot write personal data into the log."""
    leaked = _pii_keys(detail)
    if leaked:
        raise ValueError(f"audit detail must not carry personal data: {', '.join(leaked)}")
    plain = json.loads(_canonical(detail))
    _lock_chain(session)
    prev = session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1))
    prev_hash = prev or GENESIS
    when = (at or utcnow()).astimezone(UTC)  # hashed exactly as it will be read back
    entry = AuditEntry(
        at=when,
        actor=actor,
        action=action,
        target=target,
        detail=plain,
        prev_hash=prev_hash,
        hash=entry_hash(prev_hash, when, actor, action, target, plain),
    )
    session.add(entry)
    session.flush()
    return entry


def verify_chain(session: Session) -> int | None:
    """The id of the first row whose hash or link is wrong (edited, inserted or a row before it
    deleted), or None when the chain is intact."""
    columns = (
        AuditEntry.id,
        AuditEntry.at,
        AuditEntry.actor,
        AuditEntry.action,
        AuditEntry.target,
        AuditEntry.detail,
        AuditEntry.prev_hash,
        AuditEntry.hash,
    )
    rows = session.execute(
        select(*columns).order_by(AuditEntry.id).execution_options(yield_per=2000)
    )
    expected_prev = GENESIS
    for row in rows:
        computed = entry_hash(row.prev_hash, row.at, row.actor, row.action, row.target, row.detail)
        if row.prev_hash != expected_prev or computed != row.hash:
            rows.close()
            return int(row.id)
        expected_prev = row.hash
    return None


def audit_entries(
    session: Session,
    *,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Newest first, for the admin audit page and exports."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    return list(session.scalars(query))
