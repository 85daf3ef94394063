"""The playbook's "recommended products" action on SQLite and PostgreSQL: a customer whose rule
recommends products keeps their top recommended product ids with the rule, others keep none."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, update
from tests.strategy.conftest import profiles

from tierwise.core.settings import Settings
from tierwise.services import playbook as svc
from tierwise.services.access import Principal
from tierwise.services.serving import Store, customer_detail
from tierwise.store.models import PublishedProfile
from tierwise.store.publish import publish_run

ADMIN = Principal(1, "root", "Root", "admin", None)
NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
N = 240


def with_recommendations(i: int, profile: dict[str, Any]) -> dict[str, Any]:
    """Every fifth customer has no recommendations (as customers outside the catalogue)."""
    if i % 5 == 0:
        return profile | {"recommendations": None, "recommended_product_ids": None}
    ids = [f"P{(i * 7 + k) % 50:03d}" for k in range(5)]
    recs = [
        {"product_id": p, "kind": "repeat" if k % 2 else "new", "rank": k // 2 + 1}
        for k, p in enumerate(ids)
    ]
    return profile | {"recommendations": recs, "recommended_product_ids": ";".join(ids)}


def stored(store: Store) -> dict[str, dict[str, Any]]:
    with store.read() as session:
        return {row.customer_id: row.profile for row in session.scalars(select(PublishedProfile))}


def test_rules_that_recommend_products_keep_the_customers_top_product_ids(
    store: Store, store_settings: Settings
):
    people = [with_recommendations(i, p) for i, p in enumerate(profiles(N))]
    publish_run(store.write, "run-1", date(2024, 12, 31), people)
    pb = svc.load_playbook(store_settings)
    recommending = {r.name for r in pb.rules if r.recommend_products}
    assert recommending and recommending != {r.name for r in pb.rules}

    svc.apply_playbook(store, ADMIN, pb, now=NOW)

    published = {p["customer_id"]: p for p in people}
    kept = {cid: doc[svc.PROFILE_KEY] for cid, doc in stored(store).items()}
    seen = {"with": 0, "without": 0, "not asked": 0}
    for cid, playbook in kept.items():
        ids = published[cid]["recommended_product_ids"]
        if playbook["rule"] not in recommending:
            assert playbook["recommend_products"] is False
            assert playbook["recommended_products"] is None
            seen["not asked"] += 1
        elif ids is None:
            assert playbook["recommended_products"] == []
            seen["without"] += 1
        else:
            assert playbook["recommended_products"] == ids.split(";")
            assert len(playbook["recommended_products"]) == 5
            seen["with"] += 1
    assert all(seen.values()), seen
    # the customer detail of the API and the 360 page read the same document
    cid = next(c for c, p in kept.items() if p["recommended_products"])
    detail = customer_detail(store, ADMIN, cid)
    assert detail.profile["playbook"]["recommended_products"] == kept[cid]["recommended_products"]


def test_reapplying_follows_changed_recommendations_only(store: Store, store_settings: Settings):
    people = [with_recommendations(i, p) for i, p in enumerate(profiles(N))]
    publish_run(store.write, "run-1", date(2024, 12, 31), people)
    pb = svc.load_playbook(store_settings)
    svc.apply_playbook(store, ADMIN, pb, now=NOW)
    assert svc.apply_playbook(store, ADMIN, pb, now=NOW).profiles_updated == 0

    before = stored(store)
    cid = next(c for c, doc in before.items() if doc[svc.PROFILE_KEY]["recommended_products"])
    changed = before[cid] | {"recommended_product_ids": "P900;P901"}
    with store.write.begin() as session:
        session.execute(
            update(PublishedProfile)
            .where(PublishedProfile.customer_id == cid)
            .values(profile=changed)
        )
    again = svc.apply_playbook(store, ADMIN, pb, now=NOW)

    assert again.profiles_updated == 1
    assert stored(store)[cid][svc.PROFILE_KEY]["recommended_products"] == ["P900", "P901"]
