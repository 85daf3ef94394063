"""Suppression list (never contact again) and consent events.

Subjects are kept as the plain sha256 hex of their normalised value, so an erased customer's
phone or email is not stored yet a re-imported record is still recognised. A plain hash is not a
secrecy barrier for phone numbers (a small space, so it can be brute-forced); it keeps raw values
out of the table, backups and logs, which is its purpose here.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tierwise.core.errors import ConflictError, InvalidInputError
from tierwise.store.audit import audit
from tierwise.store.models import (
    CampaignMember,
    Complaint,
    ConsentEvent,
    Membership,
    MembershipChange,
    PublishedProfile,
    SubjectKind,
    Suppression,
    SuppressionReason,
    Task,
    utcnow,
)

CUSTOMER_TABLES = (
    PublishedProfile,
    Complaint,
    Task,
    ConsentEvent,
    Membership,
    MembershipChange,
    CampaignMember,
)
"""Store tables holding rows about one customer: erasure deletes from each."""

_MOBILE_CN = re.compile(r"1[3-9]\d{9}")


def normalise_phone(value: str) -> str:
    """Canonical digits: Chinese numbers in domestic form (mobile `13800130042`, landline with
    its trunk 0 `01088886666`), other countries as `+<digits>`.

    `+86 138-0013-0042`, `0086 13800130042`, `8613800130042` and `13800130042` are one subject.
    """
    text = unicodedata.normalize("NFKC", value).strip()
    digits = re.sub(r"\D", "", text)
    if not digits:
        raise InvalidInputError(f"{value!r} is not a phone number")
    international = text.lstrip("( ").startswith("+")
    if not international and digits.startswith("00"):
        international, digits = True, digits[2:]
    if international:
        if not digits.startswith("86"):
            return "+" + digits
        national = digits[2:]
    elif digits.startswith("86") and _MOBILE_CN.fullmatch(digits[2:]):
        national = digits[2:]
    else:
        return digits
    if _MOBILE_CN.fullmatch(national) or national.startswith("0"):
        return national
    return "0" + national


def normalise_email(value: str) -> str:
    """Trimmed and lower-cased (NFKC first, so full-width input matches)."""
    email = unicodedata.normalize("NFKC", value).strip().lower()
    if "@" not in email.strip("@"):
        raise InvalidInputError(f"{value!r} is not an email address")
    return email


def _normalise(kind: SubjectKind, value: str) -> str:
    if kind is SubjectKind.PHONE:
        return normalise_phone(value)
    if kind is SubjectKind.EMAIL:
        return normalise_email(value)
    customer_id = value.strip()
    if not customer_id:
        raise InvalidInputError("empty customer id")
    return customer_id


def subject_hash(kind: str, value: str) -> str:
    """sha256 hex of the normalised value; compare it with `suppressed_hashes` in bulk checks."""
    return hashlib.sha256(_normalise(SubjectKind(kind), value).encode()).hexdigest()


def suppress(session: Session, kind: str, value: str, reason: str) -> Suppression:
    """Add a subject; `erased` wins over an earlier `opted_out`, otherwise the first entry stays."""
    key = (SubjectKind(kind).value, subject_hash(kind, value))
    new_reason = SuppressionReason(reason).value
    existing = session.get(Suppression, key)
    if existing is None:
        try:
            with session.begin_nested():
                existing = Suppression(kind=key[0], subject_hash=key[1], reason=new_reason)
                session.add(existing)
        except IntegrityError:
            existing = session.get(Suppression, key, populate_existing=True)
            if existing is None:
                raise
    if new_reason == SuppressionReason.ERASED:
        existing.reason = new_reason
    session.flush()
    return existing


def lift_opt_out(session: Session, kind: str, value: str) -> bool:
    """Remove an opt-out (the customer consented again); erasures are permanent."""
    row = session.get(Suppression, (SubjectKind(kind).value, subject_hash(kind, value)))
    if row is None:
        return False
    if row.reason == SuppressionReason.ERASED:
        raise ConflictError("an erased subject stays suppressed for good")
    session.delete(row)
    session.flush()
    return True


def is_suppressed(session: Session, kind: str, value: str) -> bool:
    key = (SubjectKind(kind).value, subject_hash(kind, value))
    return session.get(Suppression, key) is not None


def suppressed_hashes(session: Session, kind: str, *, reason: str | None = None) -> set[str]:
    """Every suppressed hash of one kind (and reason), for filtering rows in bulk."""
    query = select(Suppression.subject_hash).where(Suppression.kind == SubjectKind(kind).value)
    if reason is not None:
        query = query.where(Suppression.reason == SuppressionReason(reason).value)
    return set(session.scalars(query))


def record_consent(
    session: Session,
    customer_id: str,
    purpose: str,
    granted: bool,
    source: str,
    *,
    at: datetime | None = None,
) -> ConsentEvent:
    """Append a consent event; history is kept, the latest event decides."""
    event = ConsentEvent(
        customer_id=customer_id,
        purpose=purpose,
        granted=granted,
        at=at or utcnow(),
        source=source,
    )
    session.add(event)
    session.flush()
    return event


def consent_status(session: Session, customer_id: str, purpose: str) -> bool | None:
    """The latest decision for the purpose, or None when the customer was never asked."""
    return session.scalar(
        select(ConsentEvent.granted)
        .where(ConsentEvent.customer_id == customer_id, ConsentEvent.purpose == purpose)
        .order_by(ConsentEvent.at.desc(), ConsentEvent.id.desc())
        .limit(1)
    )


def erase_customer(session: Session, customer_id: str, *, actor: str) -> dict[str, int]:
    """Delete a customer's rows from the store and suppress their id, phones and emails for good.

    Audited under the hash of the id, so the log does not keep the identifier it erased.
    Returns the rows deleted per table.
    """
    contacts = session.execute(
        select(PublishedProfile.phone, PublishedProfile.email).where(
            PublishedProfile.customer_id == customer_id
        )
    ).all()
    suppress(session, SubjectKind.CUSTOMER_ID, customer_id, SuppressionReason.ERASED)
    for phone, email in set(contacts):
        for kind, value in ((SubjectKind.PHONE, phone), (SubjectKind.EMAIL, email)):
            if value:
                try:
                    suppress(session, kind, value, SuppressionReason.ERASED)
                except InvalidInputError:
                    continue  # an unusable contact cannot be used to reach anyone either
    deleted = {}
    for model in CUSTOMER_TABLES:
        result = session.execute(delete(model).where(model.customer_id == customer_id))
        deleted[model.__tablename__] = int(getattr(result, "rowcount", 0) or 0)
    target = subject_hash(SubjectKind.CUSTOMER_ID, customer_id)
    audit(session, actor, "erase", target, deleted=deleted)
    return deleted
