"""Publishing: readers see the old current run or the new one, never a mix or a partial load."""

from __future__ import annotations

import math
import threading
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from tierwise.core.errors import ConflictError
from tierwise.store.audit import audit_entries, verify_chain
from tierwise.store.db import session_factory
from tierwise.store.models import (
    CohortRetention,
    PublishedProfile,
    PublishedRun,
    SegmentMigration,
)
from tierwise.store.publish import current_profiles, current_run, publish_run

AS_OF = date(2024, 6, 30)


def _rows(run: str, n: int) -> list[dict]:
    return [
        {
            "customer_id": f"{i:05d}",
            "rfm_segment": "champions" if i % 2 else "at_risk",
            "revenue": float(i),
            "orders": i % 7,
            "last_order_at": date(2024, 6, 1),
            "share_mon": math.nan,
            "run_marker": run,
            "consent_marketing": ("false", "是", "0", "yes")[i % 4],
        }
        for i in range(n)
    ]


def _snapshot(session) -> tuple[list[str], int]:
    """Run ids and row count of the current run's profiles, in one statement."""
    q = current_profiles().subquery()
    per_run = session.execute(select(q.c.run_id, func.count()).group_by(q.c.run_id)).all()
    return sorted(r for r, _ in per_run), sum(n for _, n in per_run)


def test_publish_switches_keeps_previous_and_retires_older(factory):
    publish_run(
        factory,
        "r1",
        AS_OF,
        _rows("r1", 30),
        migrations=[
            {"dimension": "rfm_segment", "from_value": "(none)", "to_value": "new", "customers": 3}
        ],
        cohorts=[
            {
                "cohort_month": date(2024, 1, 1),
                "month_offset": 0,
                "cohort_size": 10,
                "active_customers": 10,
                "retention": 1.0,
            }
        ],
        batch_size=7,
    )
    batches = pa.Table.from_pylist(_rows("r2", 40)).to_batches(max_chunksize=9)
    second = publish_run(factory, "r2", AS_OF, batches, batch_size=16)
    assert (second.customers, second.previous, second.retired) == (40, "r1", ())
    third = publish_run(factory, "r3", AS_OF, _rows("r3", 20))
    assert (third.previous, third.retired) == ("r2", ("r1",))

    with factory() as s:
        assert current_run(s).run_id == "r3"
        assert _snapshot(s) == (["r3"], 20)
        status = dict(s.execute(select(PublishedRun.run_id, PublishedRun.status)).all())
        assert status == {"r1": "retired", "r2": "published", "r3": "published"}
        for model in (PublishedProfile, SegmentMigration, CohortRetention):
            assert "r1" not in s.scalars(select(model.run_id).distinct()).all()
        assert s.scalar(select(func.count()).where(PublishedProfile.run_id == "r2")) == 40
        profile = s.get(PublishedProfile, ("r3", "00003"))
        assert (profile.rfm_segment, profile.revenue, profile.orders) == ("champions", 3.0, 3)
        assert profile.consent_marketing is True
        consent = s.scalars(
            select(PublishedProfile.consent_marketing)
            .where(PublishedProfile.run_id == "r3")
            .order_by(PublishedProfile.customer_id)
            .limit(4)
        ).all()
        assert consent == [False, True, False, True]
        assert profile.profile["last_order_at"] == "2024-06-01"
        assert profile.profile["share_mon"] is None and profile.profile["run_marker"] == "r3"
        assert [e.target for e in audit_entries(s, action="publish")] == ["r3", "r2", "r1"]
        assert verify_chain(s) is None


def test_failure_mid_publish_leaves_the_old_run_current_and_complete(engine, factory):
    publish_run(factory, "old", AS_OF, _rows("old", 25))
    reader = session_factory(engine, readonly=True)
    seen: list[tuple[list[str], int]] = []

    def failing_rows():
        for i, row in enumerate(_rows("new", 25)):
            if i == 22:  # two batches of ten are committed by now
                with reader() as s:
                    loading = s.scalar(select(func.count()).where(PublishedProfile.run_id == "new"))
                    assert loading == 20
                    seen.append(_snapshot(s))
                raise RuntimeError("source went away")
            yield row

    with pytest.raises(RuntimeError, match="went away"):
        publish_run(factory, "new", AS_OF, failing_rows(), batch_size=10)
    assert seen == [(["old"], 25)]
    with reader() as s:
        assert current_run(s).run_id == "old"
        assert _snapshot(s) == (["old"], 25)
        assert s.get(PublishedRun, "new") is None
        assert s.scalar(select(func.count()).where(PublishedProfile.run_id == "new")) == 0
    assert publish_run(factory, "new", AS_OF, _rows("new", 5)).customers == 5


def test_bad_rows_abort_the_publish(factory):
    publish_run(factory, "old", AS_OF, _rows("old", 3))
    rows = [*_rows("dup", 3), {"customer_id": "00001"}]
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        publish_run(factory, "dup", AS_OF, rows, batch_size=2)
    with pytest.raises(ValueError, match="customer_id"):
        publish_run(factory, "none", AS_OF, [{"revenue": 1.0}])
    with pytest.raises(ValueError, match="yes/no"):
        publish_run(factory, "bad", AS_OF, [{"customer_id": "1", "consent_marketing": "maybe"}])
    with factory() as s:
        assert current_run(s).run_id == "old"
        assert s.scalars(select(PublishedRun.run_id)).all() == ["old"]


def test_a_published_run_is_never_republished(factory):
    publish_run(factory, "r1", AS_OF, _rows("r1", 2))
    with pytest.raises(ConflictError, match="already published"):
        publish_run(factory, "r1", AS_OF, _rows("r1", 2))


def test_concurrent_readers_never_see_a_mix(engine, factory):
    reader = session_factory(engine, readonly=True)
    publish_run(factory, "r0", AS_OF, _rows("r0", 300))
    sizes = {"r0": 300, "r1": 500, "r2": 200, "r3": 400}
    observed: list[tuple[list[str], int]] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            with reader() as s:
                observed.append(_snapshot(s))

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for run_id in ("r1", "r2", "r3"):
            publish_run(factory, run_id, AS_OF, _rows(run_id, sizes[run_id]), batch_size=50)
    finally:
        done.set()
        thread.join()
    assert observed
    for runs, count in observed:
        assert len(runs) == 1 and count == sizes[runs[0]]


def test_arrow_batches_and_dicts_give_the_same_documents(factory):
    """Arrow batches are made JSON-ready column by column, dicts value by value: same result."""
    rows = [
        {
            "customer_id": f"{i:03d}",
            "revenue": (1.5, math.nan, math.inf, None)[i % 4],
            "last_order_at": datetime(2024, 6, 1, 12, 30, 0, i % 2 * 250_000),
            "first_day": date(2023, 1, 1 + i),
            "margin": Decimal("2.50"),
            "products": ["p1", f"p{i}"],
            "consent_marketing": i % 2 == 0,
            "orders": None,
        }
        for i in range(8)
    ]
    publish_run(factory, "as-dicts", AS_OF, rows)
    publish_run(factory, "as-arrow", AS_OF, pa.Table.from_pylist(rows).to_batches(3))
    with factory() as s:
        docs = {
            (p.run_id, p.customer_id): (p.profile, p.revenue, p.consent_marketing)
            for p in s.scalars(select(PublishedProfile))
        }
    for i in range(8):
        cid = f"{i:03d}"
        assert docs["as-dicts", cid] == docs["as-arrow", cid]
    assert docs["as-arrow", "001"][0]["last_order_at"] == "2024-06-01T12:30:00.250000"
    assert docs["as-arrow", "001"][0]["revenue"] is None
    assert docs["as-arrow", "002"][0]["revenue"] is None  # infinity
    assert docs["as-arrow", "000"][0]["margin"] == 2.5
    assert docs["as-arrow", "003"][0]["products"] == ["p1", "p3"]
