"""Store side of actions, on SQLite and PostgreSQL: the complaint status flow and its import
key, task escalation and outcomes, membership evaluations, campaigns, erasure, migrations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from tierwise.core.errors import ConflictError, NotFoundError
from tierwise.store.campaigns import arm_sizes, create_campaign, get_campaign, member_arms
from tierwise.store.complaints import get_complaint, move, open_complaint
from tierwise.store.db import (
    alembic_config,
    current_revision,
    make_engine,
    schema_diff,
    upgrade,
)
from tierwise.store.membership import (
    current_memberships,
    customer_history,
    latest_evaluation_date,
    save_evaluation,
)
from tierwise.store.models import Campaign, CampaignMember, Complaint, Membership, Task
from tierwise.store.suppression import erase_customer
from tierwise.store.tasks import close_task, escalate_task, open_task, overdue_tasks

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


def ticket(session, customer_id="c1", **kw):
    fields = {
        "category": "delivery",
        "opened_at": T0,
        "first_response_due_at": T0 + 4 * H,
        "resolution_due_at": T0 + 72 * H,
        "created_by": "ag1",
    } | kw
    return open_complaint(session, customer_id, **fields)


def test_complaint_status_flow_stamps_times_and_refuses_skips(session):
    c, created = ticket(session)
    assert created and c.status == "open" and c.first_response_at is None
    with pytest.raises(ConflictError, match="cannot become closed"):
        move(session, c, "closed", now=T0 + H)
    move(session, c, "responded", now=T0 + H)
    move(session, c, "resolved", now=T0 + 5 * H, resolution="refunded")
    assert (c.first_response_at, c.resolved_at, c.resolution) == (T0 + H, T0 + 5 * H, "refunded")
    move(session, c, "responded", now=T0 + 6 * H)  # reopened
    assert c.status == "responded" and c.resolved_at is None and c.first_response_at == T0 + H
    move(session, c, "resolved", now=T0 + 8 * H)
    move(session, c, "closed", now=T0 + 9 * H)
    session.commit()
    again = get_complaint(session, c.id, for_update=True)
    assert (again.status, again.closed_at) == ("closed", T0 + 9 * H)
    for target in ("open", "responded", "resolved", "closed"):
        with pytest.raises((ConflictError, ValueError)):
            move(session, again, target, now=T0 + 10 * H)
    with pytest.raises(NotFoundError):
        get_complaint(session, 999)


def test_resolving_an_open_ticket_counts_as_its_first_response(session):
    c, _ = ticket(session)
    move(session, c, "resolved", now=T0 + 2 * H)
    assert c.first_response_at == c.resolved_at == T0 + 2 * H


def test_imported_tickets_are_keyed_and_may_arrive_resolved(session):
    key = "a" * 64
    done, created = ticket(session, source="warehouse", source_key=key, resolved_at=T0 + 3 * H)
    assert created and done.status == "resolved" and done.first_response_at == T0 + 3 * H
    same, created_again = ticket(session, source="warehouse", source_key=key)
    assert not created_again and same.id == done.id
    session.commit()
    session.add(Complaint(**_complaint_row(source_key=key)))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()
    session.add(Complaint(**_complaint_row(status="pending")))
    with pytest.raises(IntegrityError):
        session.flush()


def _complaint_row(**kw):
    return {
        "customer_id": "c2",
        "source": "warehouse",
        "category": "other",
        "status": "open",
        "opened_at": T0,
        "first_response_due_at": T0 + H,
        "resolution_due_at": T0 + 2 * H,
        "created_by": "cli",
    } | kw


def test_escalation_moves_only_open_tasks_and_outcomes_record_who(session):
    late, _ = open_task(session, "c1", "churn_risk", assignee="ag1", due_at=T0 - H)
    later, _ = open_task(session, "c2", "churn_risk", assignee="ag2", due_at=T0 - 2 * H)
    future, _ = open_task(session, "c3", "churn_risk", due_at=T0 + H)
    session.commit()
    assert [t.id for t in overdue_tasks(session, T0)] == [later.id, late.id]
    assert escalate_task(session, late.id, to="mia", queue=None, now=T0)
    assert not escalate_task(session, late.id, to="mia", queue=None, now=T0)  # already
    assert escalate_task(session, later.id, to=None, queue="escalations", now=T0)
    session.commit()
    session.expire_all()
    assert (late.status, late.escalated_to, late.escalated_at, late.queue) == (
        "escalated",
        "mia",
        T0,
        None,
    )
    assert (later.escalated_to, later.queue) == (None, "escalations")
    assert [t.id for t in overdue_tasks(session, T0 + 2 * H)] == [future.id]
    close_task(session, late.id, "won_back", note="ordered again", now=T0 + H, closed_by="ag1")
    session.commit()
    session.expire_all()
    assert (late.status, late.outcome, late.closed_by) == ("done", "won_back", "ag1")
    assert not escalate_task(session, late.id, to="mia", queue=None, now=T0 + 3 * H)


def test_a_second_close_of_the_same_task_is_refused(factory):
    with factory.begin() as s:
        task_id = open_task(s, "c1", "churn_risk")[0].id
    with factory() as first, factory() as second:
        seen = second.get(Task, task_id)  # loaded before the first closes it
        second.commit()  # (kept in the identity map: sessions do not expire on commit)
        assert seen.status == "open"
        close_task(first, task_id, "reached")
        first.commit()
        with pytest.raises(ConflictError, match="already done"):
            close_task(second, task_id, "lost")


def _evaluation(eid: str, as_of: date) -> dict:
    return {
        "id": eid,
        "run_id": None,
        "as_of": as_of,
        "basis": "spend",
        "evaluated_at": T0,
        "customers": 2,
        "joined": 0,
        "upgrades": 0,
        "downgrades": 0,
        "in_grace": 0,
    }


def test_membership_evaluations_write_levels_history_and_counts_together(session):
    assert latest_evaluation_date(session) is None
    d1, d2 = date(2024, 12, 31), date(2025, 1, 31)
    joined = [
        {"customer_id": "c1", "level": "gold", "since": d1, "grace_until": None, "value": 6e3},
        {"customer_id": "c2", "level": "regular", "since": d1, "grace_until": None, "value": 10},
    ]
    save_evaluation(
        session,
        _evaluation("e1", d1) | {"joined": 2},
        inserted=joined,
        updated=[],
        changes=[
            {
                "customer_id": r["customer_id"],
                "changed_on": d1,
                "change": "join",
                "from_level": None,
                "to_level": r["level"],
                "value": r["value"],
            }
            for r in joined
        ],
    )
    save_evaluation(
        session,
        _evaluation("e2", d2) | {"upgrades": 1},
        inserted=[],
        updated=[
            {
                "customer_id": "c2",
                "level": "silver",
                "since": d2,
                "grace_until": None,
                "value": 1500,
            },
            {
                "customer_id": "c1",
                "level": "gold",
                "since": d1,
                "grace_until": date(2025, 2, 1),
                "value": 10,
            },
        ],
        changes=[
            {
                "customer_id": "c2",
                "changed_on": d2,
                "change": "upgrade",
                "from_level": "regular",
                "to_level": "silver",
                "value": 1500,
            }
        ],
    )
    session.commit()
    assert latest_evaluation_date(session) == d2
    rows = {r.customer_id: tuple(r)[1:] for r in current_memberships(session)}
    assert rows == {
        "c1": ("gold", d1, date(2025, 2, 1), 10.0),
        "c2": ("silver", d2, None, 1500.0),
    }
    assert [(h.change, h.to_level) for h in customer_history(session, "c2")] == [
        ("join", "regular"),
        ("upgrade", "silver"),
    ]
    with pytest.raises(IntegrityError):  # history must name a stored evaluation
        save_evaluation(
            session,
            _evaluation("e3", d2),
            inserted=[],
            updated=[],
            changes=[
                {
                    "customer_id": "c1",
                    "changed_on": d2,
                    "change": "sideways",
                    "from_level": None,
                    "to_level": "x",
                    "value": 0,
                }
            ],
        )


def test_campaign_members_arms_and_constraints(session):
    fields = {
        "name": "win back",
        "action": "20元券",
        "purpose": "marketing",
        "filters": {"stage": "dormant"},
        "run_id": "r1",
        "starts_on": date(2025, 3, 1),
        "ends_on": date(2025, 3, 31),
        "control_share": 0.1,
        "seed": "s",
        "created_by": "ana",
    }
    members = [(f"c{i}", "control" if i % 10 == 0 else "treatment") for i in range(25)]
    campaign = create_campaign(session, iter(members), **fields)
    session.commit()
    assert get_campaign(session, campaign.id).filters == {"stage": "dormant"}
    assert arm_sizes(session, [campaign.id]) == {campaign.id: {"treatment": 22, "control": 3}}
    assert member_arms(session, campaign.id) == dict(members)
    for bad in ({"control_share": 1.0}, {"ends_on": date(2025, 2, 1)}, {"purpose": "spam"}):
        with pytest.raises(IntegrityError):
            create_campaign(session, [], **(fields | bad))
        session.rollback()
    session.delete(get_campaign(session, campaign.id))
    session.commit()
    assert session.scalar(select(func.count()).select_from(CampaignMember)) == 0
    with pytest.raises(NotFoundError):
        get_campaign(session, campaign.id)


def test_erasure_removes_the_customer_from_every_action_table(factory):
    with factory.begin() as s:
        c, _ = ticket(s, "c1")
        task, _ = open_task(s, "c1", "complaint")
        c.task_id = task.id
        ticket(s, "c2")
        save_evaluation(
            s,
            _evaluation("e1", date(2025, 1, 1)),
            inserted=[
                {
                    "customer_id": "c1",
                    "level": "gold",
                    "since": date(2025, 1, 1),
                    "grace_until": None,
                    "value": 1.0,
                }
            ],
            updated=[],
            changes=[
                {
                    "customer_id": "c1",
                    "changed_on": date(2025, 1, 1),
                    "change": "join",
                    "from_level": None,
                    "to_level": "gold",
                    "value": 1.0,
                }
            ],
        )
        create_campaign(
            s,
            [("c1", "treatment"), ("c2", "control")],
            name="n",
            action="a",
            purpose="service",
            filters={},
            run_id="r",
            starts_on=date(2025, 1, 1),
            ends_on=date(2025, 1, 2),
            control_share=0.5,
            seed="s",
            created_by="x",
        )
    with factory.begin() as s:
        deleted = erase_customer(s, "c1", actor="dpo")
    assert {k: v for k, v in deleted.items() if v} == {
        "complaints": 1,
        "tasks": 1,
        "memberships": 1,
        "membership_history": 1,
        "campaign_members": 1,
    }
    with factory() as s:
        assert s.scalar(select(Complaint.customer_id)) == "c2"
        assert s.get(Membership, "c1") is None
        assert s.scalar(select(CampaignMember.customer_id)) == "c2"
        assert s.scalar(select(func.count()).select_from(Campaign)) == 1


def test_migration_0002_downgrades_and_upgrades_cleanly(empty_url):
    engine = make_engine(empty_url)
    cfg = alembic_config()
    try:
        upgrade(engine)
        head = current_revision(engine)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
        assert current_revision(engine) == "0001"
        assert "complaints" not in inspect(engine).get_table_names()
        upgrade(engine)
        assert current_revision(engine) == head
        assert schema_diff(engine) == []
    finally:
        engine.dispose()
