"""Follow-up tasks: one active task per customer and reason, even under a race; escalation."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tierwise.core.errors import ConflictError, NotFoundError
from tierwise.store.models import Task
from tierwise.store.tasks import (
    cancel_task,
    close_task,
    escalate_overdue,
    list_tasks,
    open_task,
)

T0 = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)


def test_open_task_returns_the_active_one_instead_of_a_duplicate(session):
    first, created = open_task(session, "c1", "churn_risk", rule="r7", assignee="li", due_at=T0)
    again, created_again = open_task(session, "c1", "churn_risk", rule="r8")
    other, _ = open_task(session, "c1", "vip_birthday")
    session.commit()
    assert created and not created_again and again.id == first.id and again.rule == "r7"
    assert other.id != first.id
    close_task(session, first.id, "reached", note="will reorder", now=T0)
    session.commit()
    fresh, created = open_task(session, "c1", "churn_risk")
    assert created and fresh.id != first.id


def test_the_database_refuses_two_active_tasks(session):
    for status in ("done", "cancelled", "open"):
        session.add(Task(customer_id="c1", reason="r", status=status))
    session.flush()
    session.add(Task(customer_id="c1", reason="r", status="escalated"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_a_racing_writer_gets_the_winners_task(factory):
    with factory() as first:
        winner, created = open_task(first, "c9", "churn_risk")
        assert created
        result: list[tuple[int, bool]] = []
        errors: list[BaseException] = []

        def racer() -> None:
            try:
                with factory() as second:
                    task, was_created = open_task(second, "c9", "churn_risk")
                    second.commit()
                    result.append((task.id, was_created))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=racer)
        thread.start()
        time.sleep(0.3)  # the racer is now waiting on the first writer's lock
        first.commit()
        thread.join(timeout=30)
    assert errors == []
    assert result == [(winner.id, False)]
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Task)) == 1


def test_close_and_cancel(session):
    task, _ = open_task(session, "c1", "churn_risk")
    done = close_task(session, task.id, "won_back", now=T0)
    assert (done.status, done.outcome, done.closed_at) == ("done", "won_back", T0)
    with pytest.raises(ConflictError, match="already done"):
        close_task(session, task.id, "lost")
    with pytest.raises(NotFoundError):
        cancel_task(session, 12345)
    with pytest.raises(ValueError):
        close_task(session, open_task(session, "c2", "x")[0].id, "maybe")
    dropped = cancel_task(session, open_task(session, "c3", "x")[0].id, note="erased")
    assert (dropped.status, dropped.note) == ("cancelled", "erased")


def test_escalate_overdue_tasks(session):
    late, _ = open_task(session, "c1", "churn_risk", due_at=T0 - timedelta(days=1))
    on_time, _ = open_task(session, "c2", "churn_risk", due_at=T0 + timedelta(days=1))
    undated, _ = open_task(session, "c3", "churn_risk")
    closed, _ = open_task(session, "c4", "churn_risk", due_at=T0 - timedelta(days=2))
    close_task(session, closed.id, "reached")
    session.commit()
    assert escalate_overdue(session, T0, queue="supervisors") == [late.id]
    session.commit()
    session.refresh(late)
    assert (late.status, late.queue) == ("escalated", "supervisors")
    assert escalate_overdue(session, T0) == []
    again, created = open_task(session, "c1", "churn_risk")
    assert not created and again.id == late.id  # escalated is still active
    close_task(session, late.id, "not_reached")
    assert [t.id for t in list_tasks(session, status="open")] == [on_time.id, undated.id]
