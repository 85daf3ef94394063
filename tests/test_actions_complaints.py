"""Complaint tickets on SQLite and PostgreSQL: deadlines and SLA states, the status flow, the
follow-up task and raised churn risk, visibility, import from warehouse interactions (again and
again, resolved later), and NPS / CSAT per segment and month from warehouse feedback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from tests.api.conftest import BACKENDS, store_settings
from tests.test_actions_tasks import NOW, PROFILES, Acts, make_acts

from tierwise.core.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError
from tierwise.core.settings import ComplaintSettings, Settings, SourceSettings
from tierwise.services.complaints import (
    ComplaintFilter,
    create_complaint,
    feedback_by,
    feedback_trend,
    get_complaint,
    import_complaints,
    list_complaints,
    move_complaint,
    sla_report,
)
from tierwise.services.ingest import ingest
from tierwise.services.tasks import TaskFilter, get_task, list_tasks
from tierwise.store.models import PublishedProfile
from tierwise.store.publish import publish_run

H = timedelta(hours=1)
HEADER = "customer_id,occurred_at,kind,channel,outcome,handled_by,cost,resolved_at,category\n"
INTERACTIONS = (
    HEADER
    + """K000,2025-05-01 10:00:00,complaint,phone,resolved,ag1,30,2025-05-01 12:00:00,delivery
K001,2025-05-10 09:00:00,complaint,wechat,pending,cs001,25,,价格
K002,2025-05-20 18:30:00,complaint,online_chat,pending,ag3,25,,product
K000,2025-05-02 10:00:00,consultation,phone,answered,cs001,5,,
"""
)
RESOLVED_LATER = (
    HEADER
    + """K001,2025-05-10 09:00:00,complaint,wechat,refunded,cs001,25,2025-06-01 08:00:00,价格
"""
)
FEEDBACK = """customer_id,responded_at,survey,csat,nps,comment
K000,2025-05-03 10:00:00,post_purchase,5,10,很好
K003,2025-05-04 10:00:00,post_purchase,2,3,
K006,2025-06-01 10:00:00,post_purchase,4,8,
K001,2025-06-02 10:00:00,post_purchase,3,9,
K004,2025-06-03 10:00:00,nps,,10,
K002,2025-06-04 10:00:00,post_purchase,1,0,太慢
"""


@pytest.fixture(params=BACKENDS)
def acts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Acts]:
    """The task world, with delivery complaints on a tighter SLA and a small warehouse."""
    base = store_settings(request, tmp_path)
    (tmp_path / "orders.csv").write_text(
        "customer_id,order_id,ordered_at,amount\nK000,O1,2025-05-01 09:00:00,10\n"
    )
    (tmp_path / "interactions_1.csv").write_text(INTERACTIONS)
    (tmp_path / "feedback.csv").write_text(FEEDBACK)
    settings = Settings(
        root=tmp_path,
        store=base.store,
        sources={
            "orders": SourceSettings(path="orders.csv"),
            "interactions": SourceSettings(path="interactions_*.csv"),
            "feedback": SourceSettings(path="feedback.csv"),
        },
        complaints=ComplaintSettings(category_sla={"delivery": (2, 24)}),
    )
    ingest(settings)
    a = make_acts(settings)
    yield a
    a.store.close()


def churn_risk(acts: Acts, customer_id: str, run_id: str = "run-1") -> tuple[str | None, dict]:
    with acts.store.read() as s:
        row = s.get(PublishedProfile, (run_id, customer_id))
        return row.churn_risk, row.profile


def test_a_ticket_gets_deadlines_a_follow_up_task_and_raises_churn_risk(acts: Acts):
    assert churn_risk(acts, "K001")[0] == "low"
    c = create_complaint(
        acts.store,
        acts.settings,
        acts.who("root"),
        "K001",
        "delivery",
        description="包裹破损",
        channel="phone",
        now=NOW,
    )
    assert (c.status, c.owner, c.created_by, c.source) == ("open", "ag2", "root", "app")
    assert (c.first_response_due_at, c.resolution_due_at) == (NOW + 2 * H, NOW + 24 * H)
    assert (c.first_response_sla, c.resolution_sla) == ("pending", "pending")
    task = get_task(acts.store, acts.who("ag2"), c.task_id)
    assert (task.reason, task.assignee, task.due_at) == ("complaint", "ag2", NOW + 24 * H)
    risk, profile = churn_risk(acts, "K001")
    assert risk == profile["churn_risk"] == "medium"
    assert profile["churn_risk_before_complaint"] == "low"
    second = create_complaint(
        acts.store, acts.settings, acts.who("ag2"), "K001", "service", now=NOW + H
    )
    assert (second.first_response_due_at, second.resolution_due_at) == (
        NOW + 5 * H,
        NOW + 73 * H,
    )
    assert second.task_id == c.task_id  # one open follow-up per customer
    assert churn_risk(acts, "K001")[0] == "medium"  # raised once per run
    with pytest.raises(InvalidInputError, match="category 'spam'"):
        create_complaint(acts.store, acts.settings, acts.who("root"), "K001", "spam")
    # the next run publishes the model's risk again; the import raises it once more
    publish_run(acts.store.write, "run-2", date(2025, 6, 30), PROFILES)
    assert churn_risk(acts, "K001", "run-2")[0] == "low"
    assert import_complaints(acts.settings, acts.store, acts.who("root"), now=NOW).raised == 1
    assert churn_risk(acts, "K001", "run-2")[0] == "medium"
    assert import_complaints(acts.settings, acts.store, acts.who("root"), now=NOW).raised == 0


def test_sla_states_follow_the_clock_and_the_status_flow(acts: Acts):
    who = acts.who("ag1")
    fast = create_complaint(acts.store, acts.settings, who, "K000", "delivery", now=NOW)
    slow = create_complaint(acts.store, acts.settings, who, "K005", "delivery", now=NOW)
    ignored = create_complaint(acts.store, acts.settings, who, "K010", "service", now=NOW)
    move_complaint(acts.store, who, fast.id, "responded", now=NOW + 2 * H)  # on the dot: met
    move_complaint(acts.store, who, fast.id, "resolved", resolution="重发", now=NOW + 20 * H)
    move_complaint(acts.store, who, slow.id, "resolved", now=NOW + 30 * H)  # both late
    later = NOW + 80 * H
    views = {c.id: c for c in list_complaints(acts.store, who, ComplaintFilter(), now=later).items}
    assert (views[fast.id].first_response_sla, views[fast.id].resolution_sla) == ("met", "met")
    assert (views[slow.id].first_response_sla, views[slow.id].resolution_sla) == (
        "breached",
        "breached",
    )
    assert (views[ignored.id].first_response_sla, views[ignored.id].resolution_sla) == (
        "overdue",
        "overdue",
    )
    assert views[fast.id].resolution == "重发"
    with pytest.raises(ConflictError, match="cannot become closed"):
        move_complaint(acts.store, who, ignored.id, "closed")
    breached = list_complaints(acts.store, who, ComplaintFilter(breached=True), now=later)
    assert {c.id for c in breached.items} == {slow.id, ignored.id}
    within = list_complaints(acts.store, who, ComplaintFilter(breached=False), now=later)
    assert {c.id for c in within.items} == {fast.id}
    report = sla_report(acts.store, who, now=later)
    assert report.open == 1 and report.overall.tickets == 3
    first, resolution = report.overall.first_response, report.overall.resolution
    assert (first.met, first.breached, first.overdue, first.pending) == (1, 1, 1, 0)
    assert first.met_rate == pytest.approx(1 / 3)
    assert (resolution.met, resolution.breached, resolution.overdue) == (1, 1, 1)
    assert report.by_category["delivery"].tickets == 2
    at_start = sla_report(acts.store, who, now=NOW + H)
    assert at_start.overall.first_response.pending == 1  # `ignored`: 4 h, not yet due


def test_closing_a_ticket_twice_or_out_of_order_is_refused(acts: Acts):
    who = acts.who("ag1")
    c = create_complaint(acts.store, acts.settings, who, "K000", "other", now=NOW)
    with pytest.raises(ConflictError):
        move_complaint(acts.store, who, c.id, "closed")
    move_complaint(acts.store, who, c.id, "resolved", now=NOW + H)
    reopened = move_complaint(acts.store, who, c.id, "responded", now=NOW + 2 * H)
    assert reopened.status == "responded" and reopened.resolved_at is None
    move_complaint(acts.store, who, c.id, "resolved", now=NOW + 3 * H)
    closed = move_complaint(acts.store, who, c.id, "closed", now=NOW + 4 * H)
    assert closed.closed_at == NOW + 4 * H
    with pytest.raises(ConflictError, match="is closed"):
        move_complaint(acts.store, who, c.id, "closed")


def test_tickets_are_visible_by_owner_scope_and_team_only(acts: Acts):
    c = create_complaint(acts.store, acts.settings, acts.who("root"), "K000", "other", now=NOW)
    for username in ("ag1", "mia", "ana"):
        assert get_complaint(acts.store, acts.who(username), c.id).id == c.id
    for username in ("ag2", "sam"):
        with pytest.raises(NotFoundError, match=f"no complaint {c.id}"):
            get_complaint(acts.store, acts.who(username), c.id)
        with pytest.raises(NotFoundError):
            move_complaint(acts.store, acts.who(username), c.id, "responded")
        assert list_complaints(acts.store, acts.who(username), ComplaintFilter()).total == 0
    with pytest.raises(NotFoundError, match="no customer"):
        create_complaint(acts.store, acts.settings, acts.who("ag2"), "K000", "other")


def test_import_from_interactions_is_idempotent_and_picks_up_resolutions(acts: Acts):
    root = acts.who("root")
    with pytest.raises(Exception, match="may not import"):
        import_complaints(acts.settings, acts.store, acts.who("mia"))
    first = import_complaints(acts.settings, acts.store, root, now=NOW)
    assert (first.rows, first.created, first.resolved) == (3, 3, 0)
    page = list_complaints(acts.store, root, ComplaintFilter(), now=NOW)
    tickets = {c.customer_id: c for c in page.items}
    done, pending, product = tickets["K000"], tickets["K001"], tickets["K002"]
    shanghai_10am = datetime(2025, 5, 1, 2, 0, tzinfo=UTC)
    assert (done.opened_at, done.resolved_at) == (shanghai_10am, shanghai_10am + 2 * H)
    assert (done.status, done.category, done.owner) == ("resolved", "delivery", "ag1")
    assert (done.first_response_sla, done.resolution_sla) == ("met", "met")
    assert (pending.category, pending.owner, pending.status) == ("other", "ag2", "open")
    assert (product.owner, product.category, product.source) == ("ag3", "product", "warehouse")
    assert done.task_id is None and pending.task_id is not None  # open ones get a follow-up
    assert churn_risk(acts, "K001")[0] == "low"  # the churn model already counts these
    again = import_complaints(acts.settings, acts.store, root, now=NOW)
    assert (again.created, again.resolved) == (0, 0)

    (acts.settings.root / "interactions_2.csv").write_text(RESOLVED_LATER)
    ingest(acts.settings, tables=["interactions"])
    later = import_complaints(acts.settings, acts.store, root, now=NOW)
    assert (later.rows, later.created, later.resolved) == (4, 0, 1)
    resolved = get_complaint(acts.store, root, pending.id)
    assert resolved.status == "resolved"
    assert resolved.resolved_at == datetime(2025, 6, 1, 0, 0, tzinfo=UTC)
    assert resolved.resolution_sla == "breached"
    tasks = list_tasks(acts.store, root, TaskFilter(reason="complaint"), now=NOW)
    assert {t.customer_id for t in tasks.items} == {"K001", "K002"}


def test_nps_and_csat_per_segment_and_month_over_the_viewers_customers(acts: Acts):
    table = feedback_by(acts.settings, acts.store, acts.who("ana"), "rfm_segment")
    stats = {s.key: s for s in table.rows}
    assert table.run_id == "run-1" and set(stats) == {"at_risk", "champions", "loyal"}
    at_risk = stats["at_risk"]  # K000 (5, 10), K003 (2, 3), K006 (4, 8)
    assert (at_risk.responses, at_risk.csat_responses, at_risk.nps_responses) == (3, 3, 3)
    assert at_risk.csat_mean == pytest.approx(11 / 3)
    assert at_risk.csat_satisfied == pytest.approx(2 / 3)
    assert at_risk.nps == pytest.approx(0.0)  # one promoter, one detractor, one passive
    champions = stats["champions"]  # K001 (3, 9), K004 (-, 10)
    assert (champions.csat_responses, champions.csat_mean, champions.nps) == (1, 3.0, 100.0)
    assert stats["loyal"].nps == -100.0 and stats["loyal"].csat_satisfied == 0.0
    agent = feedback_by(acts.settings, acts.store, acts.who("ag1"), "rfm_segment")
    assert [(s.key, s.responses, s.nps) for s in agent.rows] == [("at_risk", 1, 100.0)]
    trend = feedback_trend(acts.settings, acts.store, acts.who("root"))
    assert [(s.key, s.responses, s.nps) for s in trend.rows] == [
        ("2025-05-01", 2, 0.0),
        ("2025-06-01", 4, 25.0),  # promoters 9, 10; detractor 0; passive 8
    ]


def test_service_levels_are_configured_per_known_category(tmp_path: Path):
    toml = tmp_path / "tierwise.toml"
    toml.write_text("[complaints.category_sla]\nspam = [1, 2]\n")
    with pytest.raises(ConfigError, match=r"category_sla\.spam"):
        Settings.load(toml)
    toml.write_text("[complaints.category_sla]\nbilling = [8, 4]\n")
    with pytest.raises(ConfigError, match="first response <= resolution"):
        Settings.load(toml)
    toml.write_text("[complaints.category_sla]\nbilling = [1, 8]\n")
    sla = Settings.load(toml).complaints
    assert (sla.sla_hours("billing"), sla.sla_hours("product")) == ((1, 8), (4, 72))
