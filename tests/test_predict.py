"""Predictive columns of `tierwise run` on a real DuckDB file: CLV tiers, churn, edge cases."""

from __future__ import annotations

import json
import pickle
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tierwise.core.contracts import TABLES
from tierwise.core.settings import Settings
from tierwise.services import predict
from tierwise.services.export import export_profiles
from tierwise.services.generate import generate
from tierwise.services.ingest import ingest
from tierwise.services.run import RUNS, current_run, model_file, run, snapshot_table
from tierwise.services.warehouse import connect

PREDICTED = ["predicted_purchases", "p_alive", "expected_avg_spend", "clv", "churn_probability"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """3,000 generated customers, ingested and run once."""
    root = tmp_path_factory.mktemp("demo")
    settings = Settings.load(generate(3_000, root, seed=11).config)
    ingest(settings)
    result = run(settings)
    con = connect(settings)
    profiles = con.table(snapshot_table("profiles", result.run_id)).to_pandas()
    runs = con.table(RUNS).to_pandas().set_index("run_id")
    con.disconnect()
    return settings, result, profiles, json.loads(runs.loc[result.run_id, "models"])


def test_every_buyer_gets_predictions_and_no_value_is_nan(demo):
    _, _, p, _ = demo
    buyers = p[p.orders > 0]
    assert buyers[PREDICTED].notna().all().all()
    assert np.isfinite(buyers[PREDICTED].to_numpy(dtype=float)).all()
    assert p.loc[p.orders == 0, PREDICTED].isna().all().all()  # potential customers: unknown
    assert buyers.p_alive.between(0, 1).all() and buyers.churn_probability.between(0, 1).all()
    assert (buyers.clv >= 0).all() and (buyers.predicted_purchases >= 0).all()
    assert set(buyers.churn_risk) <= {"low", "medium", "high"}
    risky = buyers[buyers.churn_risk != "low"]
    assert risky.churn_reasons.notna().all() and (buyers.churn_risk == "low").any()


def test_value_tiers_follow_clv_when_models_run(demo):
    settings, _, p, report = demo
    assert report["purchase"]["model"] == "bgnbd" and report["spend"]["model"] == "gammagamma"
    buyers = p[p.orders > 0].sort_values(["clv", "customer_id"], ascending=[False, True])
    n_high = int(np.ceil(len(buyers) * settings.scoring.value_tier_shares[0]))
    assert (buyers.value_tier.iloc[:n_high] == "high").all()
    assert buyers.value_tier_reason.str.contains("by clv").all()


def test_churn_model_is_validated_against_both_baselines_and_saved(demo):
    settings, result, _, report = demo
    churn = report["churn"]
    assert churn["trained_at"] < churn["validated_at"] < result.as_of.isoformat()
    v = churn["validation"]
    assert set(v) == {"lightgbm", "recency only", "bgnbd p(no purchase)"}
    assert v["lightgbm"]["roc_auc"] > v["recency only"]["roc_auc"]
    with model_file(settings, result.run_id).open("rb") as f:
        saved = pickle.load(f)
    assert set(saved["versions"]) >= {"tierwise", "lightgbm"}
    models = saved["models"]
    assert models.purchase.params_ == pytest.approx(report["purchase"]["params"])
    assert 0 < float(models.purchase.p_alive(2, 10.0, 30.0)[0]) < 1


def orders_file(path, rows):
    pq.write_table(
        pa.table(
            {
                "customer_id": [r[0] for r in rows],
                "order_id": [f"o{i}" for i in range(len(rows))],
                "ordered_at": pd.to_datetime([r[1] for r in rows]),
                "amount": [float(r[2]) for r in rows],
            }
        ),
        path,
    )


def small_project(tmp_path, rows) -> Settings:
    orders_file(tmp_path / "orders.parquet", rows)
    (tmp_path / "tierwise.toml").write_text('[sources.orders]\npath = "orders.parquet"\n')
    s = Settings.load(tmp_path / "tierwise.toml")
    ingest(s)
    return s


def exported(s: Settings, tmp_path) -> pd.DataFrame:
    out = tmp_path / "p.csv"
    export_profiles(connect(s), out)
    text = out.read_text()
    assert "nan" not in text.lower().replace("channel", "")
    return pd.read_csv(out, dtype={"customer_id": str})


def test_all_one_time_buyers_skip_the_models_with_a_reason(tmp_path):
    rows = [(f"c{i:03d}", f"2024-0{1 + i % 9}-1{i % 10}", 10 + i) for i in range(60)]
    s = small_project(tmp_path, rows)
    result = run(s)
    assert "purchase" in result.models.skipped and "churn" in result.models.skipped
    df = exported(s, tmp_path)
    assert df.clv.isna().all() and df.churn_probability.isna().all()
    assert df.value_tier_reason.str.contains("by revenue").all()  # historical revenue fallback
    assert current_run(connect(s))[0] == result.run_id


def test_single_customer_gets_a_defined_result(tmp_path):
    s = small_project(tmp_path, [("only", "2024-05-01", 30), ("only", "2024-06-01", 40)])
    result = run(s)
    df = exported(s, tmp_path)
    assert len(df) == 1 and {"purchase", "churn"} <= set(result.models.skipped)


def test_first_order_on_as_of_and_zero_spend_repeaters_are_scored(tmp_path):
    config = generate(1_500, tmp_path, seed=5).config
    end = date(2026, 6, 30)
    orders_file(
        tmp_path / "orders_extra.parquet",
        [("newcomer", "2026-06-30 12:00", 99.0), ("zero", "2026-03-01 10:00", 0.0),
         ("zero", "2026-04-01 10:00", 0.0)],
    )  # fmt: skip
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('"orders.parquet"', '"orders*.parquet"'), encoding="utf-8")
    s = Settings.load(config)
    ingest(s)
    result = run(s, as_of=end)
    assert not result.models.skipped
    df = exported(s, tmp_path).set_index("customer_id")
    assert df.loc["newcomer", "tenure_days"] == 0  # T = 0
    scored = df.loc[["newcomer", "zero"], PREDICTED].to_numpy(dtype=float)
    assert np.isfinite(scored).all()
    assert df.loc["newcomer", "p_alive"] == pytest.approx(1.0)
    assert df.loc["zero", "expected_avg_spend"] > 0  # shrunk towards the population mean


def test_run_publishes_to_the_store_with_contacts_and_its_summary(demo):
    settings, result, p, _ = demo
    from sqlalchemy import func, select

    from tierwise.services.serving import opened_store
    from tierwise.store.models import PublishedProfile, PublishedRun
    from tierwise.store.publish import current_run as store_current

    with opened_store(settings) as store, store.read() as session:
        assert store_current(session).run_id == result.run_id
        n = session.scalar(select(func.count()).select_from(PublishedProfile))
        named = session.scalar(select(func.count()).where(PublishedProfile.name.is_not(None)))
        managed = session.scalar(
            select(func.count()).where(PublishedProfile.account_manager.is_not(None))
        )
        summary = session.get(PublishedRun, result.run_id).dashboard
    assert n == len(p) and named == n and managed == n  # every generated customer has contacts
    segments = {b["key"]: b["customers"] for b in summary["dimensions"]["rfm_segment"]}
    assert segments == p.rfm_segment.value_counts().to_dict()
    assert summary["totals"]["customers"] == n


def test_store_failure_is_reported_and_republish_recovers(tmp_path, monkeypatch):
    from tierwise.services.run import PublishError, republish
    from tierwise.services.serving import opened_store
    from tierwise.store.publish import current_run as store_current

    s = small_project(
        tmp_path, [(f"c{i}", f"2024-0{1 + i % 6}-1{i % 9}", 5 + i) for i in range(30)]
    )
    monkeypatch.setenv("TIERWISE_STORE__URL", f"sqlite:///{tmp_path}/missing/dir/store.db")
    broken = Settings.load(tmp_path / "tierwise.toml")
    with pytest.raises(PublishError, match="tierwise publish"):
        run(broken)
    warehouse_run = current_run(connect(s))[0]
    monkeypatch.delenv("TIERWISE_STORE__URL")
    assert republish(Settings.load(tmp_path / "tierwise.toml")) == warehouse_run
    with opened_store(s) as store, store.read() as session:
        assert store_current(session).run_id == warehouse_run


def test_large_training_sets_are_a_hash_sample_of_the_whole_frame(demo, monkeypatch):
    settings, _, _, report = demo
    cutoff = date.fromisoformat(report["churn"]["trained_at"])
    con = connect(settings)
    try:
        tables = {n: con.table(n) for n in TABLES if n in set(con.list_tables())}
        whole = predict._training_frame(tables, cutoff, settings)
        monkeypatch.setattr(predict, "MAX_TRAINING_ROWS", 500)
        sample = predict._training_frame(tables, cutoff, settings)
    finally:
        con.disconnect()
    stride = len(whole) // 500 + 1  # the labels count at least the customers of the frame
    assert stride >= 3
    assert 0.5 * len(whole) / stride < len(sample) < 1.5 * len(whole) / stride
    merged = sample.merge(whole, on="customer_id", suffixes=("", "_whole"))
    assert len(merged) == len(sample)  # every sampled customer, with the same label
    assert (merged.churned == merged.churned_whole).all()
    # profiled from the sampled inputs alone, each customer's own facts are still exact
    for fact in ("orders", "revenue", "recency_days", "complaints", "orders_last_90d"):
        assert np.allclose(merged[fact], merged[f"{fact}_whole"], equal_nan=True), fact
