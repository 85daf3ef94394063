"""The audit chain: intact after concurrent writers, broken by any edit or deletion, PII-free."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from tierwise.store.audit import GENESIS, audit, audit_entries, entry_hash, verify_chain
from tierwise.store.models import AuditEntry


def _fill(session, n=5):
    for i in range(n):
        audit(session, "root", "export", f"segment:{i}", rows=i, share=0.1 * i)
    session.commit()


def test_chain_links_every_row_and_verifies(session):
    _fill(session)
    rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert verify_chain(session) is None


def test_detail_values_round_trip_into_the_same_hash(session):
    at = datetime(2024, 3, 1, 8, 0, 0, 123456, tzinfo=timezone(timedelta(hours=8)))
    entry = audit(
        session,
        "root",
        "run",
        "run:42",
        at=at,
        as_of=date(2024, 2, 29),
        nested={"z": [1, 2.5, None, True], "a": "中文"},
        big=1e300,
    )
    session.commit()
    session.expire_all()
    stored = session.get(AuditEntry, entry.id)
    assert stored.at == at and stored.detail["as_of"] == "2024-02-29"
    args = (stored.prev_hash, stored.at, stored.actor, stored.action, stored.target, stored.detail)
    assert entry_hash(*args) == stored.hash
    assert verify_chain(session) is None


def test_an_edited_row_is_found(session):
    _fill(session)
    third = session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)).all()[2]
    session.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = :id"), {"id": third})
    session.commit()
    assert verify_chain(session) == third


def test_an_edited_detail_is_found(session):
    _fill(session)
    ids = session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)).all()
    session.execute(
        text("UPDATE audit_log SET detail = :d WHERE id = :id"),
        {"d": '{"rows": 999, "share": 0.1}', "id": ids[1]},
    )
    session.commit()
    assert verify_chain(session) == ids[1]


def test_a_rehashed_row_breaks_the_next_link(session):
    _fill(session)
    ids = session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)).all()
    row = session.get(AuditEntry, ids[1])
    forged = entry_hash(row.prev_hash, row.at, "mallory", row.action, row.target, row.detail)
    session.execute(
        text("UPDATE audit_log SET actor = 'mallory', hash = :h WHERE id = :id"),
        {"h": forged, "id": ids[1]},
    )
    session.commit()
    assert verify_chain(session) == ids[2]


def test_a_deleted_row_is_found(session):
    _fill(session)
    ids = session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)).all()
    session.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": ids[2]})
    session.commit()
    assert verify_chain(session) == ids[3]
    session.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": ids[0]})
    session.commit()
    assert verify_chain(session) == ids[1]


@pytest.mark.parametrize(
    "detail",
    [
        {"name": "张三"},
        {"phone": "13800130042"},
        {"customer_email": "a@b.cn"},
        {"changes": {"mobile-number": "x"}},
        {"rows": [{"address": "x"}]},
        {"id_card": "110101199001011234"},
    ],
)
def test_personal_data_keys_are_refused(session, detail):
    with pytest.raises(ValueError, match="personal data"):
        audit(session, "root", "export", "x", **detail)
    assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_concurrent_writers_keep_one_chain(factory):
    threads, per_thread = 4, 8
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(per_thread):
                with factory.begin() as s:
                    audit(s, f"worker{worker}", "export", f"batch:{i}", worker=worker)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == threads * per_thread
        assert verify_chain(s) is None
        assert len(audit_entries(s, actor="worker0", limit=100)) == per_thread


def test_audit_entries_filters(session):
    _fill(session, 3)
    audit(session, "ana", "login", "ana", at=datetime(2030, 1, 1, tzinfo=UTC))
    session.commit()
    assert [e.actor for e in audit_entries(session, action="login")] == ["ana"]
    assert len(audit_entries(session, since=datetime(2029, 1, 1, tzinfo=UTC))) == 1
    assert [e.target for e in audit_entries(session, actor="root", limit=2)] == [
        "segment:2",
        "segment:1",
    ]
