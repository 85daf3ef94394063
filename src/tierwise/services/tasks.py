"""Follow-up tasks (回访) as people work them: who sees which task, outcomes, escalation, and the
tasks churn warnings create.

A task is visible to admins and analysts, to its assignee, to whoever may read its customer
(`access.scope`), and to the manager it was escalated to; managers also see every task of their
team's members. Anything else answers 404 exactly like a missing task, and is audited as denied.
Overdue open tasks escalate to a manager of the assignee's team, or to the escalation queue
when the team has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, false, func, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from tierwise.core.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from tierwise.core.settings import Settings
from tierwise.services.access import Viewer, require_operator, scope
from tierwise.services.serving import Store
from tierwise.store.audit import audit
from tierwise.store.models import (
    ACTIVE_TASK_STATUSES,
    PublishedProfile,
    Role,
    Task,
    TaskOutcome,
    TaskStatus,
    User,
    utcnow,
)
from tierwise.store.publish import current_run
from tierwise.store.tasks import close_task, escalate_task, open_task, overdue_tasks

CHURN_REASON = "churn_risk"
"""Reason of the tasks churn warnings open (one open per customer)."""

_BATCH = 1_000


def customers_in_scope(viewer: Viewer, run_id: str) -> Select[Any]:
    """The ids of the customers `viewer` may read in a run, for IN (...) filters."""
    return scope(viewer, run_id=run_id).with_only_columns(PublishedProfile.customer_id)


def team_members(team: str) -> Select[Any]:
    return select(User.username).where(User.team == team)


def owned_or_in_scope(
    viewer: Viewer,
    run_id: str | None,
    *,
    owners: Sequence[InstrumentedAttribute[Any]],
    customer: InstrumentedAttribute[Any],
) -> ColumnElement[bool]:
    """The row filter of work items (tasks, complaints) `viewer` may see: every item for admins
    and analysts; for agents and managers the items they own (`owners`, the first one also
    counting for the manager's team) or whose `customer` is in their scope; nothing for others.
    """
    if viewer.role in (Role.ADMIN, Role.ANALYST):
        return true()
    if viewer.role not in (Role.MANAGER, Role.AGENT):
        return false()
    mine = [owner == viewer.username for owner in owners]
    if run_id is not None:
        mine.append(customer.in_(customers_in_scope(viewer, run_id).scalar_subquery()))
    if viewer.role == Role.MANAGER and viewer.team:
        mine.append(owners[0].in_(team_members(viewer.team).scalar_subquery()))
    return or_(*mine)


def _visible(viewer: Viewer, run_id: str | None) -> ColumnElement[bool]:
    """The row filter of the tasks `viewer` may see (see the module docstring)."""
    return owned_or_in_scope(
        viewer, run_id, owners=[Task.assignee, Task.escalated_to], customer=Task.customer_id
    )


@dataclass(frozen=True)
class TaskView:
    id: int
    customer_id: str
    reason: str
    rule: str | None
    assignee: str | None
    queue: str | None
    status: str
    outcome: str | None
    note: str | None
    due_at: datetime | None
    created_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    escalated_to: str | None
    escalated_at: datetime | None
    overdue: bool

    @classmethod
    def of(cls, task: Task, now: datetime) -> TaskView:
        active = task.status in {s.value for s in ACTIVE_TASK_STATUSES}
        return cls(
            task.id,
            task.customer_id,
            task.reason,
            task.rule,
            task.assignee,
            task.queue,
            task.status,
            task.outcome,
            task.note,
            task.due_at,
            task.created_at,
            task.closed_at,
            task.closed_by,
            task.escalated_to,
            task.escalated_at,
            active and task.due_at is not None and task.due_at < now,
        )


@dataclass(frozen=True)
class TaskFilter:
    status: str | None = None
    assignee: str | None = None
    customer_id: str | None = None
    reason: str | None = None
    overdue: bool | None = None
    """True: active tasks past due; False: everything else."""


@dataclass(frozen=True)
class TaskPage:
    items: list[TaskView]
    total: int
    counts: dict[str, int]
    """Visible tasks per status, whatever the status filter (the board's column sizes)."""
    page: int
    page_size: int


def current_run_id(session: Session) -> str | None:
    run = current_run(session)
    return run.run_id if run else None


def _active_and_late(now: datetime) -> ColumnElement[bool]:
    return Task.status.in_([s.value for s in ACTIVE_TASK_STATUSES]) & (Task.due_at < now)


def list_tasks(
    store: Store,
    viewer: Viewer,
    where: TaskFilter,
    *,
    page: int = 1,
    page_size: int = 50,
    now: datetime | None = None,
) -> TaskPage:
    """The viewer's tasks, oldest due first (undated last)."""
    now = now or utcnow()
    with store.read() as session:
        visible = _visible(viewer, current_run_id(session))
        counts = dict(
            session.execute(
                select(Task.status, func.count()).where(visible).group_by(Task.status)
            ).all()
        )
        query = select(Task).where(visible)
        if where.status is not None:
            query = query.where(Task.status == TaskStatus(where.status).value)
        for column, value in (
            (Task.assignee, where.assignee),
            (Task.customer_id, where.customer_id),
            (Task.reason, where.reason),
        ):
            if value is not None:
                query = query.where(column == value)
        if where.overdue is not None:
            late = _active_and_late(now)
            query = query.where(late if where.overdue else ~late | Task.due_at.is_(None))
        total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        rows = session.scalars(
            query.order_by(Task.due_at.is_(None), Task.due_at, Task.id)
            .offset((page - 1) * page_size)
            .limit(page_size)
        ).all()
        return TaskPage(
            [TaskView.of(t, now) for t in rows],
            total,
            {s.value: int(counts.get(s.value, 0)) for s in TaskStatus},
            page,
            page_size,
        )


def _visible_task(session: Session, viewer: Viewer, task_id: int) -> Task | None:
    return session.scalar(
        select(Task).where(Task.id == task_id, _visible(viewer, current_run_id(session)))
    )


def not_found(store: Store, viewer: Viewer, target: str, exists: bool) -> NotFoundError:
    """404 for a missing or hidden record; an attempt on a hidden one is audited."""
    if exists:
        with store.write.begin() as session:
            audit(session, viewer.username, "denied", target, attempted=target.split(":")[0])
    return NotFoundError(f"no {target.replace(':', ' ')}")


def get_task(
    store: Store, viewer: Viewer, task_id: int, *, now: datetime | None = None
) -> TaskView:
    with store.read() as session:
        task = _visible_task(session, viewer, task_id)
        if task is not None:
            return TaskView.of(task, now or utcnow())
        exists = session.get(Task, task_id) is not None
    raise not_found(store, viewer, f"task:{task_id}", exists)


def enabled_user(session: Session, username: str | None) -> User | None:
    if not username:
        return None
    return session.scalar(select(User).where(User.username == username, ~User.disabled))


def check_assignee(session: Session, viewer: Viewer, assignee: str) -> None:
    """Agents assign only to themselves, managers within their team, operators to anyone."""
    user = enabled_user(session, assignee)
    if user is None:
        raise NotFoundError(f"no enabled user {assignee!r} to assign to")
    if viewer.role == Role.AGENT and assignee != viewer.username:
        raise PermissionDeniedError("agents assign tasks only to themselves")
    if (
        viewer.role == Role.MANAGER
        and assignee != viewer.username
        and (not viewer.team or user.team != viewer.team)
    ):
        raise PermissionDeniedError("managers assign tasks only within their team")


def create_task(
    store: Store,
    settings: Settings,
    viewer: Viewer,
    customer_id: str,
    reason: str,
    *,
    assignee: str | None = None,
    due_at: datetime | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> tuple[TaskView, bool]:
    """Open a task for a customer the viewer may read; the open one if (customer, reason) has
    one already (False). Unassigned, it goes to the customer's account manager if they can
    sign in, to the creating agent, or else to the unassigned queue."""
    now = now or utcnow()
    with store.write.begin() as session:
        run_id = current_run_id(session)
        profile = None
        if run_id is not None:
            profile = session.scalar(
                scope(viewer, run_id=run_id).where(PublishedProfile.customer_id == customer_id)
            )
        if profile is None:
            raise NotFoundError(f"no customer {customer_id!r}")
        if assignee is not None:
            check_assignee(session, viewer, assignee)
        elif enabled_user(session, profile.account_manager) is not None:
            assignee = profile.account_manager
        elif viewer.role == Role.AGENT:
            assignee = viewer.username
        task, created = open_task(
            session,
            customer_id,
            reason,
            assignee=assignee,
            queue=None if assignee else settings.tasks.unassigned_queue,
            due_at=due_at or now + timedelta(hours=settings.tasks.due_hours),
            note=note,
            now=now,
        )
        if created:
            audit(session, viewer.username, "task_open", f"task:{task.id}", reason=reason)
        return TaskView.of(task, now), created


def record_outcome(
    store: Store,
    viewer: Viewer,
    task_id: int,
    outcome: str,
    *,
    note: str | None = None,
    now: datetime | None = None,
) -> TaskView:
    """Close a visible task with the call's outcome (reached, not_reached, won_back, lost)."""
    now = now or utcnow()
    try:
        TaskOutcome(outcome)
    except ValueError:
        raise InvalidInputError(
            f"outcome {outcome!r}: use one of {', '.join(o.value for o in TaskOutcome)}"
        ) from None
    with store.write.begin() as session:
        task = _visible_task(session, viewer, task_id)
        if task is not None:
            close_task(session, task_id, outcome, note=note, now=now, closed_by=viewer.username)
            audit(session, viewer.username, "task_outcome", f"task:{task_id}", outcome=outcome)
            return TaskView.of(task, now)
        exists = session.get(Task, task_id) is not None
    raise not_found(store, viewer, f"task:{task_id}", exists)


@dataclass(frozen=True)
class Escalation:
    task_id: int
    escalated_to: str | None
    queue: str | None


@dataclass
class EscalationResult:
    escalated: list[Escalation] = field(default_factory=list)


def _team_manager(session: Session, assignee: str | None) -> str | None:
    """A manager (the first by username) of the assignee's team, if any can sign in."""
    user = enabled_user(session, assignee)
    if user is None or not user.team:
        return None
    return session.scalar(
        select(User.username)
        .where(User.team == user.team, User.role == Role.MANAGER.value, ~User.disabled)
        .order_by(User.username)
        .limit(1)
    )


def escalate_overdue(
    store: Store, settings: Settings, viewer: Viewer, *, now: datetime | None = None
) -> EscalationResult:
    """Escalate every open task due before `now` (admins and analysts; the CLI for cron)."""
    require_operator(viewer, "escalate tasks")
    now = now or utcnow()
    result = EscalationResult()
    with store.write.begin() as session:
        for task in overdue_tasks(session, now):
            manager = _team_manager(session, task.assignee)
            queue = None if manager else settings.tasks.escalation_queue
            if escalate_task(session, task.id, to=manager, queue=queue, now=now):
                result.escalated.append(Escalation(task.id, manager, queue))
        if result.escalated:
            audit(
                session,
                viewer.username,
                "task_escalate",
                "tasks",
                tasks=[e.task_id for e in result.escalated],
            )
    return result


@dataclass(frozen=True)
class ChurnTasks:
    run_id: str | None
    customers: int
    """Customers at a churn risk that asks for a call."""
    created: int


def create_churn_tasks(
    store: Store, settings: Settings, viewer: Viewer, *, now: datetime | None = None
) -> ChurnTasks:
    """Open a churn follow-up for every customer of the current run at a configured churn risk
    (`tasks.churn_risks`), assigned to their account manager or the unassigned queue; customers
    who already have one open are left as they are."""
    require_operator(viewer, "create churn follow-up tasks")
    now = now or utcnow()
    with store.read() as session:
        run_id = current_run_id(session)
        if run_id is None:
            return ChurnTasks(None, 0, 0)
        rows: list[Any] = list(
            session.execute(
                scope(viewer, run_id=run_id)
                .with_only_columns(
                    PublishedProfile.customer_id,
                    PublishedProfile.account_manager,
                    PublishedProfile.churn_risk,
                )
                .where(PublishedProfile.churn_risk.in_(settings.tasks.churn_risks))
                .order_by(PublishedProfile.customer_id)
            )
        )
        users = set(session.scalars(select(User.username).where(~User.disabled)))
    due = now + timedelta(hours=settings.tasks.churn_due_hours)
    created = 0
    for start in range(0, len(rows), _BATCH):
        with store.write.begin() as session:
            for customer_id, manager, risk in rows[start : start + _BATCH]:
                assignee = manager if manager in users else None
                _, new = open_task(
                    session,
                    customer_id,
                    CHURN_REASON,
                    rule=f"churn_risk:{risk}",
                    assignee=assignee,
                    queue=None if assignee else settings.tasks.unassigned_queue,
                    due_at=due,
                    now=now,
                )
                created += new
    with store.write.begin() as session:
        audit(session, viewer.username, "task_churn", "tasks", run_id=run_id, created=created)
    return ChurnTasks(run_id, len(rows), created)
