"""Follow-up tasks (回访): at most one active task per customer and reason.

The partial unique index is the guard: `open_task` looks first (the cheap, common case) and, if a
concurrent writer inserts the same task in between, catches the violation inside a savepoint and
returns the winner's task. Escalated tasks still count as active, so escalation never lets a rule
queue the same call again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tierwise.core.errors import ConflictError, NotFoundError
from tierwise.store.models import ACTIVE_TASK_STATUSES, Task, TaskOutcome, TaskStatus, utcnow

_ACTIVE = [s.value for s in ACTIVE_TASK_STATUSES]


def _active(session: Session, customer_id: str, reason: str) -> Task | None:
    return session.scalar(
        select(Task).where(
            Task.customer_id == customer_id, Task.reason == reason, Task.status.in_(_ACTIVE)
        )
    )


def open_task(
    session: Session,
    customer_id: str,
    reason: str,
    *,
    rule: str | None = None,
    assignee: str | None = None,
    queue: str | None = None,
    due_at: datetime | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> tuple[Task, bool]:
    """The active task for (customer, reason), creating it if there is none; True if created."""
    existing = _active(session, customer_id, reason)
    if existing is not None:
        return existing, False
    task = Task(
        customer_id=customer_id,
        reason=reason,
        rule=rule,
        assignee=assignee,
        queue=queue,
        status=TaskStatus.OPEN.value,
        note=note,
        due_at=due_at,
        created_at=now or utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(task)
    except IntegrityError:
        winner = _active(session, customer_id, reason)
        if winner is None:
            raise
        return winner, False
    return task, True


def _get_active(session: Session, task_id: int) -> Task:
    """The task, locked and re-read, so of two people closing it at once the second is told."""
    task = session.get(Task, task_id, with_for_update=True, populate_existing=True)
    if task is None:
        raise NotFoundError(f"no task {task_id}")
    if task.status not in _ACTIVE:
        raise ConflictError(f"task {task_id} is already {task.status}")
    return task


def close_task(
    session: Session,
    task_id: int,
    outcome: str,
    *,
    note: str | None = None,
    now: datetime | None = None,
    closed_by: str | None = None,
) -> Task:
    """Mark an open or escalated task done with the call's outcome."""
    task = _get_active(session, task_id)
    task.outcome = TaskOutcome(outcome).value
    task.status = TaskStatus.DONE.value
    task.closed_at = now or utcnow()
    task.closed_by = closed_by
    if note is not None:
        task.note = note
    session.flush()
    return task


def cancel_task(
    session: Session, task_id: int, *, note: str | None = None, now: datetime | None = None
) -> Task:
    """Drop a task that no longer applies (customer erased, rule withdrawn...)."""
    task = _get_active(session, task_id)
    task.status = TaskStatus.CANCELLED.value
    task.closed_at = now or utcnow()
    if note is not None:
        task.note = note
    session.flush()
    return task


def escalate_overdue(session: Session, now: datetime, *, queue: str | None = None) -> list[int]:
    """Escalate open tasks due before `now` (moving them to `queue` when given); their ids."""
    values: dict[str, str] = {"status": TaskStatus.ESCALATED.value}
    if queue is not None:
        values["queue"] = queue
    result = session.execute(
        update(Task)
        .where(Task.status == TaskStatus.OPEN.value, Task.due_at < now)
        .values(**values)
        .returning(Task.id)
    )
    return sorted(result.scalars())


def overdue_tasks(session: Session, now: datetime) -> list[Task]:
    """Open tasks due before `now`, oldest due first (escalated ones were handled already)."""
    return list(
        session.scalars(
            select(Task)
            .where(Task.status == TaskStatus.OPEN.value, Task.due_at < now)
            .order_by(Task.due_at, Task.id)
        )
    )


def escalate_task(
    session: Session, task_id: int, *, to: str | None, queue: str | None, now: datetime
) -> bool:
    """Hand an open task to a manager (`to`) or, when there is none, to a queue; False when the
    task is no longer open (closed, or escalated by a concurrent pass)."""
    values: dict[str, object] = {
        "status": TaskStatus.ESCALATED.value,
        "escalated_to": to,
        "escalated_at": now,
    }
    if queue is not None:
        values["queue"] = queue
    result = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == TaskStatus.OPEN.value)
        .values(**values)
        .returning(Task.id)
    )
    return result.scalar() is not None


def list_tasks(
    session: Session,
    *,
    status: str | None = None,
    assignee: str | None = None,
    customer_id: str | None = None,
    limit: int = 200,
) -> list[Task]:
    """Oldest due first (undated last), for work queues."""
    query = select(Task).order_by(Task.due_at.is_(None), Task.due_at, Task.id).limit(limit)
    if status is not None:
        query = query.where(Task.status == TaskStatus(status).value)
    if assignee is not None:
        query = query.where(Task.assignee == assignee)
    if customer_id is not None:
        query = query.where(Task.customer_id == customer_id)
    return list(session.scalars(query))
