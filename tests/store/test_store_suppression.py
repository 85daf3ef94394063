"""Suppression: one subject however a phone or email is written; consent; customer erasure."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tierwise.core.errors import ConflictError, InvalidInputError
from tierwise.store.audit import audit_entries, verify_chain
from tierwise.store.models import ConsentEvent, PublishedProfile, Suppression, Task
from tierwise.store.publish import publish_run
from tierwise.store.suppression import (
    consent_status,
    erase_customer,
    is_suppressed,
    lift_opt_out,
    normalise_email,
    normalise_phone,
    record_consent,
    subject_hash,
    suppress,
    suppressed_hashes,
)
from tierwise.store.tasks import open_task


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("+86 138-0013-0042", "13800130042"),
        ("13800130042", "13800130042"),
        ("0086 13800130042", "13800130042"),
        ("8613800130042", "13800130042"),
        ("(+86) 138 0013 0042", "13800130042"),
        ("＋８６ １３８００１３００４２", "13800130042"),
        ("010-8888-6666", "01088886666"),
        ("+86 10 8888 6666", "01088886666"),
        ("+1 (415) 555-0100", "+14155550100"),
    ],
)
def test_normalise_phone(raw, canonical):
    assert normalise_phone(raw) == canonical


def test_normalise_email_and_bad_values():
    assert normalise_email("  Zhang.San@Example.COM ") == "zhang.san@example.com"
    with pytest.raises(InvalidInputError):
        normalise_email("nobody")
    with pytest.raises(InvalidInputError):
        normalise_phone("n/a")
    assert subject_hash("phone", "+86 138-0013-0042") == subject_hash("phone", "13800130042")
    assert len(subject_hash("email", "a@b.cn")) == 64


def test_suppress_and_check_by_any_spelling(session):
    suppress(session, "phone", "+86 138-0013-0042", "opted_out")
    suppress(session, "email", "A@B.cn", "erased")
    session.commit()
    assert is_suppressed(session, "phone", "13800130042")
    assert is_suppressed(session, "email", " a@b.CN")
    assert not is_suppressed(session, "phone", "13800130043")
    assert not is_suppressed(session, "customer_id", "13800130042")  # kinds are separate
    assert suppressed_hashes(session, "phone") == {subject_hash("phone", "13800130042")}
    stored = session.scalars(select(Suppression.subject_hash)).all()
    assert all("13800130042" not in h and "@" not in h for h in stored)


def test_erased_wins_and_is_permanent(session):
    suppress(session, "phone", "13800130042", "opted_out")
    row = suppress(session, "phone", "+8613800130042", "erased")
    suppress(session, "phone", "13800130042", "opted_out")
    session.commit()
    assert row.reason == "erased"
    assert session.scalar(select(func.count()).select_from(Suppression)) == 1
    with pytest.raises(ConflictError):
        lift_opt_out(session, "phone", "13800130042")
    suppress(session, "email", "x@y.cn", "opted_out")
    assert lift_opt_out(session, "email", "X@y.cn")
    assert not is_suppressed(session, "email", "x@y.cn")
    assert not lift_opt_out(session, "email", "x@y.cn")


def test_latest_consent_decides(session):
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    assert consent_status(session, "c1", "marketing") is None
    record_consent(session, "c1", "marketing", True, "signup form", at=t0)
    record_consent(session, "c1", "marketing", False, "sms STOP", at=t0 + timedelta(days=3))
    record_consent(session, "c1", "profiling", True, "signup form", at=t0)
    session.commit()
    assert consent_status(session, "c1", "marketing") is False
    assert consent_status(session, "c1", "profiling") is True


def test_erase_customer_removes_rows_and_suppresses_contacts(factory):
    rows = [
        {"customer_id": "c1", "phone": "+86 138-0013-0042", "email": "A@b.cn", "revenue": 1.0},
        {"customer_id": "c2", "phone": "13900000000", "email": None, "revenue": 2.0},
    ]
    publish_run(factory, "r1", date(2024, 1, 1), rows)
    with factory.begin() as s:
        open_task(s, "c1", "churn_risk")
        record_consent(s, "c1", "marketing", True, "form")
    with factory.begin() as s:
        deleted = erase_customer(s, "c1", actor="dpo")
    untouched = ("complaints", "memberships", "membership_history", "campaign_members")
    assert deleted == {"published_profiles": 1, "tasks": 1, "consent_events": 1} | dict.fromkeys(
        untouched, 0
    )
    with factory() as s:
        assert is_suppressed(s, "customer_id", "c1")
        assert is_suppressed(s, "phone", "13800130042")
        assert is_suppressed(s, "email", "a@b.cn")
        assert not is_suppressed(s, "phone", "13900000000")
        for model in (PublishedProfile, Task, ConsentEvent):
            remaining = s.scalars(select(model.customer_id)).all()
            assert "c1" not in remaining
        (entry,) = audit_entries(s, action="erase")
        assert entry.target == subject_hash("customer_id", "c1") and "c1" not in str(entry.detail)
        assert verify_chain(s) is None
