"""Follow-up tasks through the services, on SQLite and PostgreSQL: creation from churn warnings
and by hand, no duplicates, who sees what, outcomes, escalation to the team's manager."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from tests.api.conftest import BACKENDS, store_settings

from tierwise.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from tierwise.core.settings import Settings
from tierwise.services.access import Principal
from tierwise.services.serving import Store, open_store
from tierwise.services.tasks import (
    TaskFilter,
    create_churn_tasks,
    create_task,
    escalate_overdue,
    get_task,
    list_tasks,
    record_outcome,
)
from tierwise.store.audit import audit_entries
from tierwise.store.publish import publish_run
from tierwise.store.users import create_user

NOW = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
USERS = {
    "root": ("admin", None),
    "ana": ("analyst", None),
    "mia": ("manager", "north"),
    "max": ("manager", "north"),  # two managers: escalation picks the first by name
    "sam": ("manager", "south"),
    "ag1": ("agent", "north"),
    "ag2": ("agent", "north"),
    "ag3": ("agent", "west"),  # a team without a manager
}
MANAGERS = ("ag1", "ag2", "ag3", None, "ghost")
RISKS = ("high", "low", "medium")
N = 60


def profile(i: int) -> dict:
    return {
        "customer_id": f"K{i:03d}",
        "name": f"客户{i}",
        "phone": f"1380000{i:04d}",
        "account_manager": MANAGERS[i % len(MANAGERS)],
        "churn_risk": RISKS[i % 3],
        "rfm_segment": ("at_risk", "champions", "loyal")[i % 3],
        "value_tier": ("high", "mid", "low")[i % 3],
        "lifecycle_stage": "active",
        "revenue": 100.0 + i,
        "consent_marketing": i % 4 != 1,
    }


PROFILES = [profile(i) for i in range(N)]


def ids(where) -> set[str]:
    return {p["customer_id"] for p in PROFILES if where(p)}


@dataclass
class Acts:
    settings: Settings
    store: Store

    def who(self, username: str) -> Principal:
        role, team = USERS[username]
        return Principal(0, username, username, role, team)


def make_acts(settings: Settings) -> Acts:
    store = open_store(settings)
    with store.write.begin() as s:
        for username, (role, team) in USERS.items():
            create_user(s, username, role, "correct horse battery", team, hasher=HASHER)
    publish_run(store.write, "run-1", date(2025, 5, 31), PROFILES)
    return Acts(settings, store)


@pytest.fixture(params=BACKENDS)
def acts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Acts]:
    a = make_acts(store_settings(request, tmp_path))
    yield a
    a.store.close()


def customers_of(tasks) -> set[str]:
    return {t.customer_id for t in tasks}


def test_churn_warnings_open_one_task_per_customer_and_never_twice(acts: Acts):
    with pytest.raises(PermissionDeniedError):
        create_churn_tasks(acts.store, acts.settings, acts.who("mia"), now=NOW)
    first = create_churn_tasks(acts.store, acts.settings, acts.who("ana"), now=NOW)
    high = ids(lambda p: p["churn_risk"] == "high")
    assert (first.run_id, first.customers, first.created) == ("run-1", len(high), len(high))
    again = create_churn_tasks(acts.store, acts.settings, acts.who("root"), now=NOW + timedelta(1))
    assert again.created == 0
    page = list_tasks(acts.store, acts.who("root"), TaskFilter(), page_size=200, now=NOW)
    assert page.total == len(high) and customers_of(page.items) == high
    by_customer = {t.customer_id: t for t in page.items}
    for p in PROFILES:
        if p["churn_risk"] != "high":
            continue
        t = by_customer[p["customer_id"]]
        manager = p["account_manager"] if p["account_manager"] in USERS else None
        assert (t.assignee, t.queue) == (manager, None if manager else "unassigned")
        assert t.due_at == NOW + timedelta(hours=48) and t.reason == "churn_risk"
        assert t.rule == "churn_risk:high" and t.status == "open"


def test_each_role_sees_its_own_tasks_and_others_are_404(acts: Acts):
    create_churn_tasks(acts.store, acts.settings, acts.who("root"), now=NOW)
    high = ids(lambda p: p["churn_risk"] == "high")

    def seen(username: str) -> set[str]:
        page = list_tasks(acts.store, acts.who(username), TaskFilter(), page_size=200, now=NOW)
        assert page.total == len(page.items) == sum(page.counts.values())
        return customers_of(page.items)

    assert seen("ag1") == high & ids(lambda p: p["account_manager"] == "ag1")
    team = ids(lambda p: p["account_manager"] in ("ag1", "ag2"))
    assert seen("mia") == seen("max") == high & team
    assert seen("sam") == set()
    assert seen("ana") == high
    hidden = list_tasks(acts.store, acts.who("root"), TaskFilter(assignee="ag2"), now=NOW).items[0]
    with pytest.raises(NotFoundError) as denied:
        get_task(acts.store, acts.who("ag1"), hidden.id)
    with pytest.raises(NotFoundError) as missing:
        get_task(acts.store, acts.who("ag1"), 99_999)
    assert str(denied.value) == f"no task {hidden.id}" and str(missing.value) == "no task 99999"
    with pytest.raises(NotFoundError):
        record_outcome(acts.store, acts.who("ag1"), hidden.id, "reached")
    with acts.store.read() as s:
        assert audit_entries(s, action="denied", actor="ag1", limit=1)[0].target == (
            f"task:{hidden.id}"
        )


def test_an_agent_records_the_outcome_once(acts: Acts):
    create_churn_tasks(acts.store, acts.settings, acts.who("root"), now=NOW)
    mine = list_tasks(acts.store, acts.who("ag1"), TaskFilter(), now=NOW).items[0]
    with pytest.raises(InvalidInputError, match="outcome 'maybe'"):
        record_outcome(acts.store, acts.who("ag1"), mine.id, "maybe")
    done = record_outcome(acts.store, acts.who("ag1"), mine.id, "won_back", note="下单了", now=NOW)
    assert (done.status, done.outcome, done.note, done.closed_by) == (
        "done",
        "won_back",
        "下单了",
        "ag1",
    )
    assert get_task(acts.store, acts.who("ag1"), mine.id).closed_at == NOW
    with pytest.raises(ConflictError, match="already done"):
        record_outcome(acts.store, acts.who("ag1"), mine.id, "lost")
    page = list_tasks(acts.store, acts.who("ag1"), TaskFilter(status="done"), now=NOW)
    assert [t.id for t in page.items] == [mine.id] and page.counts["done"] == 1
    # closed: a new warning may open a new task for the same customer and reason
    assert create_churn_tasks(acts.store, acts.settings, acts.who("root"), now=NOW).created == 1


def test_overdue_tasks_escalate_to_the_team_manager_or_the_queue(acts: Acts):
    create_churn_tasks(acts.store, acts.settings, acts.who("root"), now=NOW)
    before_due = NOW + timedelta(hours=47)
    assert (
        escalate_overdue(acts.store, acts.settings, acts.who("root"), now=before_due).escalated
        == []
    )
    with pytest.raises(PermissionDeniedError):
        escalate_overdue(acts.store, acts.settings, acts.who("ag1"))
    late = NOW + timedelta(hours=49)
    assert list_tasks(acts.store, acts.who("ag1"), TaskFilter(overdue=True), now=late).total > 0
    result = escalate_overdue(acts.store, acts.settings, acts.who("ana"), now=late)
    tasks = {
        t.id: t
        for t in list_tasks(
            acts.store, acts.who("root"), TaskFilter(), page_size=200, now=late
        ).items
    }
    assert {e.task_id for e in result.escalated} == set(tasks)
    for e in result.escalated:
        t = tasks[e.task_id]
        expected = "max" if t.assignee in ("ag1", "ag2") else None  # max < mia
        assert (t.status, t.escalated_to, t.escalated_at) == ("escalated", expected, late)
        assert t.queue == (None if expected else "escalations")
    assert escalate_overdue(acts.store, acts.settings, acts.who("root"), now=late).escalated == []
    # the manager escalated to sees them; still active, so no duplicate is opened
    seen = list_tasks(acts.store, acts.who("max"), TaskFilter(status="escalated"), now=late)
    assert seen.total == sum(1 for t in tasks.values() if t.escalated_to == "max") > 0
    assert create_churn_tasks(acts.store, acts.settings, acts.who("root"), now=late).created == 0
    some = next(t for t in tasks.values() if t.escalated_to == "max")
    assert record_outcome(acts.store, acts.who("max"), some.id, "not_reached").status == "done"
    with acts.store.read() as s:
        entry = audit_entries(s, action="task_escalate", limit=1)[0]
    assert sorted(entry.detail["tasks"]) == sorted(tasks)


def test_tasks_by_hand_respect_scope_and_assignment_rules(acts: Acts):
    own = "K000"  # ag1's customer
    other = "K001"  # ag2's
    task, created = create_task(
        acts.store, acts.settings, acts.who("ag1"), own, "birthday", note="生日", now=NOW
    )
    assert created and task.assignee == "ag1" and task.due_at == NOW + timedelta(hours=72)
    same, created = create_task(acts.store, acts.settings, acts.who("mia"), own, "birthday")
    assert not created and same.id == task.id
    with pytest.raises(NotFoundError, match="no customer"):
        create_task(acts.store, acts.settings, acts.who("ag1"), other, "birthday")
    with pytest.raises(PermissionDeniedError):
        create_task(acts.store, acts.settings, acts.who("ag1"), own, "visit", assignee="ag2")
    with pytest.raises(PermissionDeniedError):
        create_task(acts.store, acts.settings, acts.who("mia"), own, "visit", assignee="ag3")
    with pytest.raises(NotFoundError, match="no enabled user 'nobody'"):
        create_task(acts.store, acts.settings, acts.who("root"), own, "visit", assignee="nobody")
    handed, _ = create_task(
        acts.store,
        acts.settings,
        acts.who("mia"),
        own,
        "visit",
        assignee="ag2",
        due_at=NOW + timedelta(days=3),
    )
    assert handed.assignee == "ag2" and handed.due_at == NOW + timedelta(days=3)
    queued, _ = create_task(acts.store, acts.settings, acts.who("root"), "K003", "visit")
    assert (queued.assignee, queued.queue) == (None, "unassigned")  # K003 has no manager
    assert get_task(acts.store, acts.who("ag2"), handed.id).id == handed.id  # assigned to ag2
