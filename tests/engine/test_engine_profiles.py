"""build_profiles on DuckDB and Spark against the pandas oracle, column by column."""

from __future__ import annotations

from datetime import date

import ibis
import pandas as pd
import pytest
from engine_data import AS_OF, dataset
from profile_oracle import assert_frames_match, profiles

from tierwise.core.errors import ConfigError, DataError
from tierwise.core.schemes import SegmentRule
from tierwise.core.settings import LifecycleSettings, ScoringSettings
from tierwise.engine import PROFILE_SCHEMA, build_profiles, latest_order_date

COLUMNS = [
    "customer_id",
    "first_order_at",
    "last_order_at",
    "orders",
    "order_lines",
    "order_days",
    "revenue",
    "avg_order_value",
    "recency_days",
    "tenure_days",
    "median_interval_days",
    "categories",
    "preferred_category",
    "preferred_channel",
    *(f"share_{d}" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")),
    *(f"share_{b}" for b in ("night", "morning", "afternoon", "evening")),
    "discount_share",
    "views",
    "carts",
    "browse_to_buy",
    "complaints",
    "unresolved_complaints",
    "follow_ups",
    "last_csat",
    "mean_nps",
    "gross_margin",
    "service_cost",
    "marketing_cost",
    "acquisition_cost",
    "profit",
    "is_unprofitable",
    "cac_payback_days",
    "r_score",
    "f_score",
    "m_score",
    "rfm_code",
    "rfm_segment",
    "rfm_segment_reason",
    "rfm_class8",
    "rfm_class8_reason",
    "abc_class",
    "abc_reason",
    "value_tier",
    "value_tier_reason",
    "lifecycle_stage",
    "lifecycle_reason",
]

VIP = [
    SegmentRule.model_validate(r)
    for r in (
        {"segment": "vip", "r": "4-5", "f": "3-5", "m": "4-5"},
        {"segment": "big_spender", "m": "5"},
        {"segment": "lapsed", "r": "1-2"},
        {"segment": "other"},
    )
]

CONFIGS = {
    "all_tables_defaults": {
        "tables": None,
        "as_of": AS_OF,
        "scoring": ScoringSettings(),
        "lifecycle": LifecycleSettings(),
        "value_column": "revenue",
    },
    "fixed_median_custom_scheme": {
        "tables": ("orders", "customers", "events", "costs"),
        "as_of": AS_OF,
        "scoring": ScoringSettings(
            score_method="fixed",
            class8_method="median",
            segment_scheme="vip",
            schemes={"vip": VIP},
            abc_cuts=(0.5, 0.8),
            value_tier_shares=(0.25, 0.25),
            margin_rate=0.4,
        ),
        "lifecycle": LifecycleSettings(
            new_days=60,
            churn_days=120,
            loyal_min_orders=3,
            loyal_min_tenure_days=60,
            dormant_cadence_factor=1.5,
            churn_cadence_factor=6,
            min_dormant_days=20,
            reactivated_days=30,
        ),
        "value_column": "gross_margin",
    },
    "orders_only_fixed_class8": {
        "tables": ("orders",),
        "as_of": date(2024, 5, 31),
        "scoring": ScoringSettings(
            class8_method="fixed", class8_recency_days=20, class8_orders=1, class8_revenue=150
        ),
        "lifecycle": LifecycleSettings(),
        "value_column": "profit",
    },
}


def _frames(names: tuple[str, ...] | None) -> dict[str, pd.DataFrame]:
    frames = dataset()
    return frames if names is None else {n: frames[n] for n in names}


@pytest.mark.parametrize("config", CONFIGS)
def test_profiles_match_oracle(load, config):
    c = CONFIGS[config]
    frames = _frames(c["tables"])
    expr = build_profiles(
        load(frames),
        as_of=c["as_of"],
        scoring=c["scoring"],
        lifecycle=c["lifecycle"],
        value_column=c["value_column"],
    )
    assert expr.schema() == PROFILE_SCHEMA
    got = expr.to_pandas()
    assert list(got.columns) == COLUMNS
    expected = profiles(
        frames,
        as_of=c["as_of"],
        scoring=c["scoring"],
        lifecycle=c["lifecycle"],
        value_column=c["value_column"],
    )
    assert_frames_match(got, expected)


@pytest.mark.parametrize("con", ["duckdb"], indirect=True)
def test_hand_checked_values(load):
    """What the dataset comments promise, independently of the oracle (one backend suffices)."""
    frames = dataset()
    got = build_profiles(
        load(frames), as_of=AS_OF, scoring=ScoringSettings(), lifecycle=LifecycleSettings()
    ).to_pandas()
    p = got.set_index("customer_id")
    assert set(p.index) == {f"c{i:02d}" for i in (*range(1, 15), 16, 17)}
    assert p.lifecycle_stage.to_dict() == {
        "c01": "active",  # 6 orders but tenure 177 < 180: not yet loyal
        "c02": "churned",
        "c03": "reactivated",
        "c04": "new",
        "c05": "churned",  # 51 days silent against a 9-day cadence (> 4 ×)
        "c06": "dormant",
        "c07": "dormant",
        "c08": "dormant",
        "c09": "loyal",
        "c10": "active",
        "c11": "potential",
        "c12": "potential",
        "c13": "potential",
        "c14": "potential",  # its only order is after as_of
        "c16": "churned",
        "c17": "churned",
    }
    c01 = p.loc["c01"]
    assert (c01.orders, c01.order_lines, c01.order_days, c01.revenue) == (6, 7, 5, 1000)
    assert c01.median_interval_days == 36  # gaps 36, 34, 36, 69 between distinct days
    assert (c01.views, c01.carts, c01.browse_to_buy) == (4, 1, 1.5)
    assert (c01.complaints, c01.unresolved_complaints, c01.follow_ups) == (2, 1, 1)
    assert (c01.last_csat, c01.mean_nps) == (2, (9 + 6 + 10) / 3)
    assert (c01.service_cost, c01.marketing_cost, c01.acquisition_cost) == (24, 15, 500)
    assert c01.gross_margin == 1000 - 120 - 150
    assert p.loc["c05", "unresolved_complaints"] == 1  # resolved only after as_of
    assert p.loc["c05", "acquisition_cost"] == 75  # no customer record: sum of its costs
    assert p.loc["c16", "acquisition_cost"] == 150  # the latest ingest's record
    assert p.loc["c16", "cac_payback_days"] == 31
    assert p.loc["c16", "preferred_category"] == "A"  # tie A/Y by order count, A first
    assert p.loc["c16", "categories"] == 2  # categories from the latest product rows
    assert p.loc["c04", "views"] == 2  # a view at 23:59 on as_of counts, midnight after not
    assert p.loc["c06", "r_score"] == p.loc["c07", "r_score"]
    assert p.loc["c06", "rfm_code"] == p.loc["c07", "rfm_code"]
    assert p.loc["c05", "abc_class"] == "C" and p.loc["c17", "abc_class"] == "C"
    no_orders = p[p.orders == 0]
    assert no_orders.r_score.isna().all() and no_orders.abc_class.isna().all()
    assert set(no_orders.rfm_segment) == {"no_orders"} and set(no_orders.value_tier) == {"low"}
    assert (p.value_tier == "high").sum() == 3  # 20 % of 12 buyers, rounded up


def test_latest_order_date(load):
    t = load({"orders": dataset()["orders"]})["orders"]
    assert pd.Timestamp(latest_order_date(t).execute()).date() == date(2024, 7, 5)


def test_bad_inputs_fail_before_running():
    orders = ibis.memtable(dataset()["orders"])
    kw = {"as_of": AS_OF, "scoring": ScoringSettings(), "lifecycle": LifecycleSettings()}
    with pytest.raises(ConfigError, match="value column 'rfm_code'"):
        build_profiles({"orders": orders}, value_column="rfm_code", **kw)
    with pytest.raises(DataError, match="orders"):
        build_profiles({"customers": orders}, **kw)
