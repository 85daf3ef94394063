"""Applying playbooks to published profiles on SQLite and PostgreSQL: the rule kept per customer,
follow-up tasks (due from the SLA, assigned, never doubled), scope, dry runs, hostile input."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.strategy.conftest import HOSTILE, profiles

from tierwise.core.errors import ConfigError, NotFoundError, PermissionDeniedError
from tierwise.core.settings import PlaybookSettings, Settings
from tierwise.services import playbook as svc
from tierwise.services.access import Principal
from tierwise.services.serving import Store
from tierwise.store.models import AuditEntry, PublishedProfile, Task, User
from tierwise.store.publish import publish_run
from tierwise.store.tasks import close_task, open_task
from tierwise.strategy.conditions import evaluate
from tierwise.strategy.playbook import Playbook, parse_playbook

ADMIN = Principal(1, "root", "Root", "admin", None)
ANALYST = Principal(2, "ana", "Ana", "analyst", None)
AGENT = Principal(3, "ag1", "Agent 1", "agent", "north")
MANAGER = Principal(4, "mia", "Mia", "manager", "north")
NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
N = 240


@pytest.fixture
def published(store: Store) -> Store:
    """N profiles managed by ag1 (a user), ag2 (disabled), nobody, or an unknown name."""
    publish_run(store.write, "run-1", date(2024, 12, 31), profiles(N))
    with store.write.begin() as session:
        for name, disabled in (("ag1", False), ("ag2", True)):
            session.add(
                User(username=name, display_name=name, role="agent", password_hash="x",
                     disabled=disabled)
            )  # fmt: skip
    return store


def default(settings: Settings) -> Playbook:
    return svc.load_playbook(settings)


def rows(store: Store) -> list[PublishedProfile]:
    with store.read() as session:
        return list(
            session.scalars(select(PublishedProfile).order_by(PublishedProfile.customer_id))
        )


def tasks(store: Store) -> list[Task]:
    with store.read() as session:
        return list(session.scalars(select(Task).order_by(Task.customer_id, Task.reason)))


def expected_rules(store: Store, pb: Playbook) -> dict[str, str | None]:
    """Each customer's rule by the pure evaluator, independently of the SQL."""
    out = {}
    for row in rows(store):
        rule = pb.first_match(svc.record_of(row))
        out[row.customer_id] = rule.name if rule else None
    return out


def test_apply_keeps_each_customers_rule_as_the_pure_evaluator_decides(
    published: Store, store_settings: Settings
):
    pb = default(store_settings)
    expected = expected_rules(published, pb)
    assert len(set(expected.values())) >= 7  # the data exercise most rules

    result = svc.apply_playbook(published, ADMIN, pb, now=NOW)

    assert result.run_id == "run-1" and result.customers == N and result.unmatched == 0
    assert {r.name: r.customers for r in result.rules if r.customers} == dict(
        Counter(expected.values())
    )
    assert result.profiles_updated == N
    for row in rows(published):
        kept = row.profile[svc.PROFILE_KEY]
        rule = pb.rule(expected[row.customer_id] or "")
        assert kept["rule"] == rule.name
        assert kept["reason"] == rule.reason
        assert kept["service_level"] == rule.service_level
        assert kept["sla_hours"] == pb.sla_hours[rule.service_level]
        assert kept["playbook"] == pb.digest
    view = svc.overview(published, ADMIN, pb)
    assert {v.rule.name: v.customers for v in view.rules if v.customers} == dict(
        Counter(expected.values())
    )


def test_tasks_are_due_from_the_sla_and_go_to_the_account_manager_or_queue(
    published: Store, store_settings: Settings
):
    pb = default(store_settings)
    expected = expected_rules(published, pb)
    warned = {
        r.customer_id
        for r in rows(published)
        if pb.churn_warning and evaluate(pb.churn_warning.when, svc.record_of(r))
    }
    managers = {r.customer_id: r.account_manager for r in rows(published)}

    result = svc.apply_playbook(published, ADMIN, pb, now=NOW)

    want = {}
    for cid, name in expected.items():
        rule = pb.rule(name or "")
        if rule.task is not None:
            want[cid] = (rule.task.reason, rule.name, rule.task.queue, pb.due_hours(rule))
        elif cid in warned:
            assert pb.churn_warning is not None
            task = pb.churn_warning.task
            want[cid] = (task.reason, "churn_warning", task.queue, pb.churn_due_hours())
    got = tasks(published)
    assert len(got) == len(want) == result.tasks_created > 0
    assert result.churn_warnings.customers == len(warned)
    for t in got:
        reason, rule, queue, hours = want[t.customer_id]
        assert (t.reason, t.rule, t.queue, t.status) == (reason, rule, queue, "open")
        assert t.due_at == NOW + timedelta(hours=hours)
        # the account manager when an enabled user, else only the queue
        assert t.assignee == ("ag1" if managers[t.customer_id] == "ag1" else None)
    assert {t.reason for t in got} >= {"vip_winback_call", "winback_call", "onboarding_call"}
    assert {managers[t.customer_id] for t in got if t.assignee is None} == {"ag2", None, HOSTILE}
    vip = next(t for t in got if t.reason == "vip_winback_call")
    assert vip.due_at == NOW + timedelta(hours=4)  # the vip SLA


def test_reapplying_doubles_no_task_and_rewrites_no_profile(
    published: Store, store_settings: Settings
):
    pb = default(store_settings)
    assert pb.churn_warning is not None
    warned = next(
        r.customer_id
        for r in rows(published)
        if evaluate(pb.churn_warning.when, svc.record_of(r))
        and pb.rule(expected_rules(published, pb)[r.customer_id] or "").task is None
    )
    with published.write.begin() as session:  # a churn follow-up the tasks module opened
        open_task(session, warned, pb.churn_warning.task.reason, rule="churn_risk:high", now=NOW)
    first = svc.apply_playbook(published, ADMIN, pb, now=NOW)
    assert first.churn_warnings.tasks_open == 1
    assert [t.rule for t in tasks(published) if t.customer_id == warned] == ["churn_risk:high"]
    again = svc.apply_playbook(published, ANALYST, pb, now=NOW + timedelta(days=1))
    assert again.tasks_created == 0 and again.profiles_updated == 0
    assert sum(r.tasks_open for r in again.rules) + again.churn_warnings.tasks_open == (
        first.tasks_created + 1
    )
    done = tasks(published)[0]
    with published.write.begin() as session:
        close_task(session, done.id, "reached", now=NOW)
    third = svc.apply_playbook(published, ADMIN, pb, now=NOW + timedelta(days=2))
    assert third.tasks_created == 1  # the closed one is due again, the open ones are not
    assert len(tasks(published)) == first.tasks_created + 2


def test_a_dry_run_counts_and_changes_nothing(published: Store, store_settings: Settings):
    pb = default(store_settings)
    before = [r.profile for r in rows(published)]
    dry = svc.apply_playbook(published, ADMIN, pb, dry_run=True, now=NOW)
    assert dry.dry_run and dry.tasks_created == 0 and dry.profiles_updated == 0
    assert tasks(published) == [] and [r.profile for r in rows(published)] == before
    real = svc.apply_playbook(published, ADMIN, pb, now=NOW)
    assert [(r.name, r.customers) for r in dry.rules] == [(r.name, r.customers) for r in real.rules]
    assert dry.churn_warnings.customers == real.churn_warnings.customers
    view = svc.overview(published, ADMIN, pb)
    assert view.task_candidates == real.tasks_created


def test_applying_is_audited_and_for_operators_only(published: Store, store_settings: Settings):
    pb = default(store_settings)
    for viewer in (AGENT, MANAGER):
        with pytest.raises(PermissionDeniedError):
            svc.apply_playbook(published, viewer, pb, now=NOW)
        with pytest.raises(PermissionDeniedError):
            svc.apply_configured(store_settings, published, viewer)
    assert tasks(published) == []
    result = svc.apply_playbook(published, ANALYST, pb, now=NOW)
    with published.read() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "playbook_apply")
        ).one()
    assert (entry.actor, entry.target) == ("ana", "run:run-1")
    assert entry.detail["tasks_created"] == result.tasks_created
    assert entry.detail["playbook"] == pb.digest


def test_counts_and_rule_pages_cover_only_the_viewers_customers(
    published: Store, store_settings: Settings
):
    pb = default(store_settings)
    expected = expected_rules(published, pb)
    mine = {r.customer_id for r in rows(published) if r.account_manager == "ag1"}
    view = svc.overview(published, AGENT, pb)
    assert sum(v.customers for v in view.rules) == len(mine)
    assert {v.rule.name: v.customers for v in view.rules if v.customers} == dict(
        Counter(expected[c] for c in mine)
    )
    name = Counter(expected[c] for c in mine).most_common(1)[0][0]
    assert name is not None
    page = svc.rule_customers(published, AGENT, pb, name, page_size=5)
    assert page.total == sum(expected[c] == name for c in mine)
    assert len(page.items) == min(5, page.total)
    assert all(item["customer_id"] in mine for item in page.items)
    every = svc.rule_customers(published, ADMIN, pb, name, page_size=200)
    assert {i["customer_id"] for i in every.items} == {c for c, r in expected.items() if r == name}
    with pytest.raises(NotFoundError):
        svc.rule_customers(published, ADMIN, pb, "no_such_rule")


def test_hostile_conditions_and_data_are_inert(published: Store, tmp_path: Path):
    quoted = HOSTILE.replace("'", "''")
    text = f"""\
rules:
  - name: hostile_city
    when: "city = '{quoted}' or account_manager = '{quoted}'"
    service_level: basic
    task: {{reason: hostile_check, queue: q}}
  - name: rest
    service_level: standard
"""
    with published.write.begin() as session:
        session.add(User(username="keeper", display_name="k", role="admin", password_hash="x"))
    pb = parse_playbook(text, "hostile.yaml")
    hit = {
        r.customer_id
        for r in rows(published)
        if HOSTILE in (r.profile.get("city"), r.account_manager)
    }
    assert hit
    result = svc.apply_playbook(published, ADMIN, pb, now=NOW)
    assert {r.name: r.customers for r in result.rules} == {
        "hostile_city": len(hit),
        "rest": N - len(hit),
    }
    assert {t.customer_id for t in tasks(published)} == hit
    with published.read() as session:
        assert session.scalar(select(User.username).where(User.username == "keeper")) == "keeper"


def test_the_configured_playbook_file_is_used(store_settings: Settings, tmp_path: Path):
    (tmp_path / "mine.yaml").write_text(
        "rules:\n  - name: everyone\n    service_level: vip\n", encoding="utf-8"
    )
    settings = store_settings.model_copy(
        update={"playbook": PlaybookSettings(path=Path("mine.yaml"))}
    )
    assert [r.name for r in svc.load_playbook(settings).rules] == ["everyone"]
    missing = store_settings.model_copy(update={"playbook": PlaybookSettings(path=Path("no.yaml"))})
    with pytest.raises(ConfigError, match="no such playbook file"):
        svc.load_playbook(missing)


def test_without_a_published_run_there_is_nothing_to_apply(store: Store, store_settings: Settings):
    pb = default(store_settings)
    result = svc.apply_playbook(store, ADMIN, pb, now=NOW)
    assert result.run_id is None and result.customers == 0 and result.tasks_created == 0
    assert svc.overview(store, ADMIN, pb).run_id is None
