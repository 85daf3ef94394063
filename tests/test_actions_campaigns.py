"""Campaigns: target lists through scope and consent, a reproducible control group, exports of
the treatment arm only, and an effect report whose intervals cover a treatment effect injected
into generated orders."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from tests.api.conftest import BACKENDS, store_settings
from tests.test_actions_tasks import PROFILES, Acts, make_acts

from tierwise.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from tierwise.core.settings import Settings
from tierwise.services.campaigns import (
    CampaignSpec,
    campaign_effect,
    create_campaign,
    export_campaign,
    get_campaign,
    list_campaigns,
)
from tierwise.services.exports import LOCAL_OPERATOR
from tierwise.services.generate import generate
from tierwise.services.ingest import ingest
from tierwise.services.run import run
from tierwise.services.serving import CustomerFilter, opened_store
from tierwise.store.audit import audit_entries
from tierwise.store.models import CampaignMember, PublishedProfile
from tierwise.store.suppression import erase_customer, record_consent, suppress
from tierwise.strategy.effect import in_control

START, END = date(2025, 6, 1), date(2025, 6, 30)
BEFORE_END, AFTER_END = date(2025, 6, 15), date(2025, 7, 1)


@pytest.fixture(params=BACKENDS)
def acts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Acts]:
    a = make_acts(store_settings(request, tmp_path))
    yield a
    a.store.close()


def spec(**kw) -> CampaignSpec:
    return CampaignSpec(name="回访券", action="20元券", starts_on=START, ends_on=END, **kw)


def arms(acts: Acts, campaign_id: int) -> dict[str, str]:
    with acts.store.read() as s:
        rows = s.execute(
            select(CampaignMember.customer_id, CampaignMember.arm).where(
                CampaignMember.campaign_id == campaign_id
            )
        )
        return dict(rows.all())


def test_target_lists_follow_scope_consent_and_purpose(acts: Acts):
    with acts.store.write.begin() as s:
        suppress(s, "phone", "+86 13800000008", "opted_out")  # K008
        record_consent(s, "K012", "marketing", False, "crm")
        erase_customer(s, "K016", actor="dpo")
    marketing = create_campaign(acts.store, acts.who("ana"), spec(seed="a"), today=START)
    blocked = {"K008", "K012", "K016"}
    consenting = {p["customer_id"] for p in PROFILES if p["consent_marketing"]} - blocked
    assert set(arms(acts, marketing.id)) == consenting
    service = create_campaign(acts.store, acts.who("ana"), spec(purpose="service"))
    assert set(arms(acts, service.id)) == {p["customer_id"] for p in PROFILES} - {"K016"}
    team = create_campaign(
        acts.store, acts.who("mia"), spec(where=CustomerFilter(churn_risk="high"), seed="t")
    )
    expected = {
        p["customer_id"]
        for p in PROFILES
        if p["account_manager"] in ("ag1", "ag2") and p["churn_risk"] == "high"
    } & consenting
    assert set(arms(acts, team.id)) == expected
    assert team.filters == {"churn_risk": "high"} and team.run_id == "run-1"
    assert (marketing.phase, marketing.treatment + marketing.control) == (
        "running",
        len(consenting),
    )
    with pytest.raises(ConflictError, match="no customer"):
        create_campaign(acts.store, acts.who("ana"), spec(where=CustomerFilter(segment="nope")))
    with pytest.raises(InvalidInputError, match="end on or after"):
        create_campaign(acts.store, acts.who("ana"), CampaignSpec("x", "y", END, START))


def test_the_control_group_is_the_seeds_and_reproducible(acts: Acts):
    first = create_campaign(
        acts.store, acts.who("root"), spec(purpose="service", seed="s1", control_share=0.3)
    )
    again = create_campaign(
        acts.store, acts.who("root"), spec(purpose="service", seed="s1", control_share=0.3)
    )
    other = create_campaign(
        acts.store, acts.who("root"), spec(purpose="service", seed="s2", control_share=0.3)
    )
    a, b, c = arms(acts, first.id), arms(acts, again.id), arms(acts, other.id)
    assert a == b and a != c
    assert all((arm == "control") == in_control("s1", cid, 0.3) for cid, arm in a.items())
    assert first.control == sum(1 for arm in a.values() if arm == "control")
    assert 0 < first.control < first.treatment
    seeded = create_campaign(acts.store, acts.who("root"), spec())
    assert len(seeded.seed) == 16 and seeded.control_share == 0.1


def test_campaigns_are_for_operators_and_their_creating_manager(acts: Acts):
    mine = create_campaign(acts.store, acts.who("mia"), spec(seed="m"))
    with pytest.raises(PermissionDeniedError):
        create_campaign(acts.store, acts.who("ag1"), spec())
    with pytest.raises(PermissionDeniedError):
        list_campaigns(acts.store, acts.who("ag1"))
    assert [c.id for c in list_campaigns(acts.store, acts.who("ana"))] == [mine.id]
    assert list_campaigns(acts.store, acts.who("sam")) == []
    with pytest.raises(NotFoundError, match=f"no campaign {mine.id}"):
        get_campaign(acts.store, acts.who("sam"), mine.id)
    assert get_campaign(acts.store, acts.who("mia"), mine.id, today=AFTER_END).phase == "ended"
    assert get_campaign(acts.store, acts.who("mia"), mine.id, today=START - timedelta(1)).phase == (
        "planned"
    )


def test_exports_hold_the_treatment_arm_checked_again_for_consent(acts: Acts, tmp_path: Path):
    c = create_campaign(acts.store, acts.who("mia"), spec(seed="x", control_share=0.4))
    members = arms(acts, c.id)
    treated = sorted(cid for cid, arm in members.items() if arm == "treatment")
    withdrawn = treated[0]
    with acts.store.write.begin() as s:
        record_consent(s, withdrawn, "marketing", False, "app")
    out = tmp_path / "campaign.csv"
    result = export_campaign(acts.store, acts.who("mia"), c.id, out)
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["customer_id"] for r in rows] == treated[1:] and result.rows == len(treated) - 1
    assert all(r["phone"].startswith("138****") for r in rows)  # a manager sees masked phones
    assert arms(acts, c.id)[withdrawn] == "treatment"  # still measured (intention to treat)
    with acts.store.read() as s:
        entry = audit_entries(s, action="export", actor="mia", limit=1)[0]
    assert entry.target == f"campaign:{c.id}" and entry.detail["rows"] == result.rows
    with pytest.raises(NotFoundError):
        export_campaign(acts.store, acts.who("sam"), c.id, tmp_path / "x.csv")
    xlsx = export_campaign(acts.store, LOCAL_OPERATOR, c.id, tmp_path / "c.xlsx")
    assert xlsx.rows == len(treated) - 1
    with pytest.raises(InvalidInputError, match=r"\.csv or \.xlsx"):
        export_campaign(acts.store, LOCAL_OPERATOR, c.id, tmp_path / "c.json")


def test_the_report_waits_for_the_window_to_end(acts: Acts):
    c = create_campaign(acts.store, acts.who("ana"), spec())
    with pytest.raises(ConflictError, match="runs until 2025-06-30"):
        campaign_effect(acts.settings, acts.store, acts.who("ana"), c.id, today=BEFORE_END)
    with pytest.raises(NotFoundError):
        campaign_effect(acts.settings, acts.store, acts.who("sam"), c.id, today=AFTER_END)


# --- the effect report on generated data with an injected effect ------------------------------

EXTRA_ORDER_P = 0.12
EXTRA_ORDER_MEAN = 100.0  # gamma(2, 50)


def test_effect_report_intervals_cover_an_injected_treatment_effect(tmp_path: Path):
    """Every target buys in the window with a probability that depends on its history; treated
    ones additionally place an extra order (mean 100) with probability 0.12. True effects per
    customer: +12 revenue, +0.12 orders, retention + mean of 0.12 × (1 − p_baseline)."""
    generated = generate(2_000, tmp_path / "demo", seed=11, end=date(2025, 6, 30))
    settings = Settings.load(generated.config, models={"enabled": False})
    ingest(settings)
    done = run(settings)
    start, end = done.as_of + timedelta(days=1), done.as_of + timedelta(days=60)
    campaign_spec = CampaignSpec(
        name="win-back",
        action="满200减30",
        starts_on=start,
        ends_on=end,
        purpose="service",
        control_share=0.3,
        seed="effect-test",
        cost_per_contact=2.0,
        margin_rate=0.4,
    )
    with opened_store(settings) as store:
        campaign = create_campaign(store, LOCAL_OPERATOR, campaign_spec)
        with store.read() as s:
            members = dict(s.execute(select(CampaignMember.customer_id, CampaignMember.arm)).all())
            history = dict(
                s.execute(select(PublishedProfile.customer_id, PublishedProfile.orders)).all()
            )
    rng = np.random.default_rng(5)
    ids = sorted(members)
    base_p = np.array([0.15 + 0.25 * ((history[c] or 0) >= 3) for c in ids])
    treated = np.array([members[c] == "treatment" for c in ids])
    base = rng.random(len(ids)) < base_p
    extra = treated & (rng.random(len(ids)) < EXTRA_ORDER_P)
    rows = [(c, rng.gamma(2.0, 60.0)) for c, b in zip(ids, base, strict=True) if b]
    rows += [
        (c, rng.gamma(2.0, EXTRA_ORDER_MEAN / 2)) for c, e in zip(ids, extra, strict=True) if e
    ]
    days = rng.integers(0, (end - start).days + 1, len(rows))
    pq.write_table(
        pa.table(
            {
                "customer_id": [c for c, _ in rows],
                "order_id": [f"CAMP{i:06d}" for i in range(len(rows))],
                "ordered_at": [
                    np.datetime64(start + timedelta(days=int(d)), "s") + np.timedelta64(36_000, "s")
                    for d in days
                ],
                "amount": [round(float(a), 2) for _, a in rows],
            }
        ),
        generated.out / "orders_campaign.parquet",
    )
    toml = generated.config.read_text(encoding="utf-8")
    generated.config.write_text(toml.replace('path = "orders.parquet"', 'path = "orders*.parquet"'))
    settings = Settings.load(generated.config, models={"enabled": False})
    report = ingest(settings, tables=["orders"])
    assert sum(f.accepted for f in report.files) == len(rows)

    with opened_store(settings) as store:
        effect = campaign_effect(
            settings, store, LOCAL_OPERATOR, campaign.id, today=end + timedelta(days=1)
        )
    r = effect.report
    assert effect.complete and r.treated == campaign.treatment and r.control == campaign.control
    assert 0.25 < r.control / (r.treated + r.control) < 0.35
    truth_revenue = EXTRA_ORDER_P * EXTRA_ORDER_MEAN
    truth_retention = float(np.mean(EXTRA_ORDER_P * (1 - base_p)))
    assert r.revenue.difference.covers(truth_revenue)
    assert r.orders.difference.covers(EXTRA_ORDER_P)
    assert r.retention.difference.covers(truth_retention)
    assert r.incremental_revenue.covers(truth_revenue * r.treated)
    assert r.revenue.difference.low > 0  # the design has the power to see the effect
    assert r.cost == 2.0 * r.treated
    assert r.roi.estimate == pytest.approx((0.4 * r.incremental_revenue.estimate - r.cost) / r.cost)
    observed_control = [b for b, t in zip(base, treated, strict=True) if not t]
    assert r.retention.control == pytest.approx(np.mean(observed_control))
