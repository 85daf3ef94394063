"""Recommendations and behaviour through /api/v1 after a real run: generated data, a DuckDB
warehouse and a SQLite store; segment views narrowed to what each role may see."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.api.world import CHEAP_HASHER, PASSWORD

from tierwise.api.app import create_app
from tierwise.core.settings import Settings
from tierwise.services.generate import generate
from tierwise.services.ingest import ingest
from tierwise.services.recommend import behaviour_file
from tierwise.services.run import run, snapshot_table
from tierwise.services.warehouse import connect
from tierwise.store.models import PublishedProfile
from tierwise.store.tokens import create_token
from tierwise.store.users import create_user

API = "/api/v1"
AGENT = "am001"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("behaviour-api")
    settings = Settings.load(generate(1_500, root, seed=21).config)
    ingest(settings)
    result = run(settings)
    con = connect(settings)
    profiles = con.table(snapshot_table("profiles", result.run_id)).to_pandas()
    con.disconnect()
    app = create_app(settings)
    with TestClient(app) as client:
        tokens = {}
        with app.state.store.write.begin() as session:
            for name, role, team in (("boss", "admin", None), (AGENT, "agent", "east")):
                user, _ = create_user(session, name, role, PASSWORD, team, hasher=CHEAP_HASHER)
                tokens[name] = {"Authorization": f"Bearer {create_token(session, user, 't')}"}
            mine = set(
                session.scalars(
                    select(PublishedProfile.customer_id).where(
                        PublishedProfile.run_id == result.run_id,
                        PublishedProfile.account_manager == AGENT,
                    )
                )
            )
        yield settings, result, profiles, client, tokens, mine


def test_customer_recommendations_follow_the_scope(served):
    _, result, profiles, client, tokens, mine = served
    buyers = profiles[profiles.orders > 1]
    own = buyers[buyers.customer_id.isin(mine)].iloc[0]
    other = buyers[~buyers.customer_id.isin(mine)].iloc[0]
    r = client.get(f"{API}/customers/{own.customer_id}/recommendations", headers=tokens[AGENT])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run_id"] == result.run_id and body["behaviour_cluster"] == own.behaviour_cluster
    recs = list(own.recommendations)
    assert body["repeat"] == [dict(x) for x in recs if x["kind"] == "repeat"]
    assert body["new"] == [dict(x) for x in recs if x["kind"] == "new"]
    assert body["new"] and body["new"][0]["title"]  # product names are not masked as PII
    hidden = client.get(f"{API}/customers/{other.customer_id}/recommendations",
                        headers=tokens[AGENT])  # fmt: skip
    missing = client.get(f"{API}/customers/nobody/recommendations", headers=tokens[AGENT])
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == {"detail": f"no customer {other.customer_id!r}"}
    assert client.get(f"{API}/customers/{other.customer_id}/recommendations",
                      headers=tokens["boss"]).status_code == 200  # fmt: skip


def _expected_top(settings, profiles, members: set[str], days: int) -> pd.DataFrame:
    orders = pd.read_parquet(settings.resolve("orders.parquet"))
    as_of = datetime(2026, 6, 30)
    lo = as_of - timedelta(days=days) + timedelta(days=1)
    window = orders[
        orders.customer_id.isin(members)
        & (orders.amount > 0)
        & (orders.ordered_at >= lo)
        & (orders.ordered_at < as_of + timedelta(days=1))
    ]
    g = window.groupby("product_id").agg(
        customers=("customer_id", "nunique"),
        orders=("order_id", "nunique"),
    )
    return g.reset_index().sort_values(
        ["customers", "orders", "product_id"], ascending=[False, False, True]
    )


@pytest.mark.parametrize("who", ["boss", AGENT])
def test_segment_products_count_only_visible_customers(served, who):
    settings, result, profiles, client, tokens, mine = served
    key = profiles.rfm_segment.value_counts().index[0]
    segment = set(profiles.customer_id[profiles.rfm_segment == key])
    members = segment if who == "boss" else segment & mine
    r = client.get(f"{API}/segments/rfm_segment/{key}/products", params={"n": 5, "days": 3650},
                   headers=tokens[who])  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run_id"] == result.run_id and body["customers"] == len(members)
    expected = _expected_top(settings, profiles, members, 3650).head(5)
    got = pd.DataFrame(body["products"])
    assert len(got) == 5
    assert got.product_id.tolist() == expected.product_id.tolist()
    assert got.customers.tolist() == expected.customers.tolist()
    assert got["rank"].tolist() == list(range(1, len(expected) + 1))
    assert got.title.notna().all()


def test_segment_behaviour_heatmap_preferences_and_funnel(served):
    settings, _, profiles, client, tokens, mine = served
    key = profiles.behaviour_cluster.value_counts().index[0]
    members = set(profiles.customer_id[profiles.behaviour_cluster == key]) & mine
    r = client.get(f"{API}/segments/behaviour_cluster/{key}/behaviour",
                   params={"days": 365, "funnel_days": 90}, headers=tokens[AGENT])  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customers"] == len(members)
    orders = pd.read_parquet(settings.resolve("orders.parquet"))
    window = orders[orders.customer_id.isin(members) & (orders.ordered_at >= datetime(2025, 7, 1))]
    placed = window.groupby(["customer_id", "order_id"]).size()
    assert sum(c["orders"] for c in body["heatmap"]) == len(placed)
    assert all(0 <= c["weekday"] <= 6 and 0 <= c["hour"] <= 23 for c in body["heatmap"])
    shares = [c["order_share"] for c in body["channels"]]
    assert sum(shares) == pytest.approx(1.0)  # one channel per order
    assert [c["orders"] for c in body["categories"]] == sorted(
        (c["orders"] for c in body["categories"]), reverse=True
    )
    f = body["funnel"]
    assert f["days"] == 90 and f["viewers"] >= f["carters"] >= f["buyers"] >= 0


def test_rules_clusters_and_evaluation_describe_the_run(served):
    settings, result, _, client, tokens, _ = served
    saved = json.loads(behaviour_file(settings, result.run_id).read_text(encoding="utf-8"))
    r = client.get(f"{API}/association-rules", params={"limit": 3}, headers=tokens[AGENT])
    assert r.status_code == 200
    assert r.json()["rules"] == saved["association_rules"][:3]
    product = saved["association_rules"][0]["antecedent"]
    only = client.get(f"{API}/association-rules", params={"product_id": product},
                      headers=tokens[AGENT]).json()["rules"]  # fmt: skip
    assert only and {x["antecedent"] for x in only} == {product}
    clusters = client.get(f"{API}/behaviour/clusters", headers=tokens[AGENT]).json()
    assert clusters["k"] == saved["clusters"]["k"] == len(clusters["clusters"])
    evaluation = client.get(f"{API}/recommendations/evaluation", headers=tokens[AGENT]).json()
    assert evaluation["chosen"] == saved["chosen"] and evaluation["k"] == 10
    assert client.get(f"{API}/association-rules").status_code == 401


def test_unknown_dimensions_are_refused(served):
    _, _, _, client, tokens, _ = served
    r = client.get(f"{API}/segments/postcode/x/products", headers=tokens["boss"])
    assert r.status_code == 422
