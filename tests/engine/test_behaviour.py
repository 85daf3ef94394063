"""Behaviour patterns in the engine on DuckDB and Spark, each against a plain-Python oracle.

The orders are drawn at random (seeded) with every awkward case present: repeated lines of a
product in one order, returns, lines without a product, the same order id used by two
customers (a basket is a customer's order), orders after as_of and before `since`. Every test
runs on both backends against the same oracle, which is the Spark parity check.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from engine_data import frame
from profile_oracle import assert_frames_match

from tierwise.engine.behaviour import (
    FEATURES,
    association_rules,
    basket_items,
    behaviour_features,
    customer_products,
    funnel,
    item_neighbours,
    pair_counts,
    preferences,
    product_catalogue,
    top_products,
    weekday_hour,
)

AS_OF = date(2024, 6, 30)
SINCE = date(2024, 3, 31)
END = datetime(2024, 7, 1)
PRODUCTS = [f"p{i}" for i in range(1, 9)]
CATEGORY = {p: "AB"[i % 2] for i, p in enumerate(PRODUCTS)}
CHANNELS = ["app", "web", "store", None]


def _orders() -> list[tuple]:
    rng = np.random.default_rng(8)
    rows = []
    order_no = 0
    for c in range(14):
        customer = f"c{c:02d}"
        for _ in range(int(rng.integers(1, 6))):
            order_no += 1
            # customers c00 and c01 share order ids: their baskets must stay apart
            order = f"o{order_no if c > 1 else 1000 + _}"
            at = datetime(2024, 1, 1) + timedelta(minutes=int(rng.integers(0, 200 * 24 * 60)))
            channel = CHANNELS[int(rng.integers(0, len(CHANNELS)))]
            favourites = PRODUCTS[c % 3 : c % 3 + 5]
            for _line in range(int(rng.integers(1, 5))):
                p = favourites[int(rng.integers(0, len(favourites)))]
                amount = float(rng.integers(5, 200))
                discount = float(rng.choice([0, 0, 5]))
                rows.append((customer, order, at, amount, 1, p, CATEGORY[p], channel, "s1",
                             discount, None))  # fmt: skip
                if rng.random() < 0.1:  # a return of the line
                    rows.append((customer, order, at, -amount, -1, p, CATEGORY[p], channel,
                                 "s1", 0, None))  # fmt: skip
            if rng.random() < 0.15:  # a line without a product (shipping fee)
                rows.append((customer, order, at, 8.0, 1, None, None, channel, "s1", 0, None))
    # a basket whose only product line was fully returned, and an order after as_of
    rows.append(("c03", "o900", datetime(2024, 5, 1, 9), 30.0, 1, "p8", "B", "app", "s1", 0, None))
    rows.append(
        ("c03", "o900", datetime(2024, 5, 1, 9), -30.0, -1, "p8", "B", "app", "s1", 0, None)
    )
    rows.append(("c04", "o901", datetime(2024, 7, 3, 9), 50.0, 1, "p1", "A", "web", "s1", 0, None))
    return rows


ORDERS = _orders()


def _sold(since: date | None = None) -> list[tuple]:
    lo = datetime.combine(since + timedelta(days=1), datetime.min.time()) if since else None
    return [
        r
        for r in ORDERS
        if r[2] < END and r[3] > 0 and r[5] is not None and (lo is None or r[2] >= lo)
    ]


def _baskets(level: str = "order") -> dict[tuple, set[str]]:
    out: dict[tuple, set[str]] = defaultdict(set)
    for r in _sold():
        out[(r[0], r[1]) if level == "order" else (r[0],)].add(r[5])
    return out


def test_association_rules_equal_a_brute_force_count(load):
    t = load({"orders": frame("orders", ORDERS)})
    got = association_rules(t["orders"], as_of=AS_OF, min_baskets=2).to_pandas()
    baskets = _baskets()
    n = len(baskets)
    items = Counter(p for b in baskets.values() for p in b)
    pairs = Counter(pair for b in baskets.values() for pair in combinations(sorted(b), 2))
    expected = []
    for (x, y), both in pairs.items():
        if both < 2:
            continue
        for a, b in ((x, y), (y, x)):
            expected.append(
                {
                    "antecedent": a,
                    "consequent": b,
                    "baskets": both,
                    "antecedent_baskets": items[a],
                    "consequent_baskets": items[b],
                    "support": both / n,
                    "confidence": both / items[a],
                    "lift": both * n / (items[a] * items[b]),
                }
            )
    expected = pd.DataFrame(expected)
    assert len(expected) >= 10  # the case is not trivially small
    for df in (got, expected):
        df["key"] = df.antecedent + ">" + df.consequent
    assert_frames_match(got, expected, key="key")
    strong = association_rules(t["orders"], as_of=AS_OF, min_baskets=2, min_confidence=0.5)
    kept = set(strong.to_pandas().pipe(lambda d: d.antecedent + ">" + d.consequent))
    assert kept == set(expected.loc[expected.confidence >= 0.5, "key"])


def test_pair_counts_keep_the_most_recent_items_of_a_big_basket(load):
    t = load({"orders": frame("orders", ORDERS)})
    items = basket_items(t["orders"], as_of=AS_OF, basket="customer", max_items=3)
    got = pair_counts(items).to_pandas()
    last: dict[tuple[str, str], datetime] = {}
    for r in _sold():
        last[(r[0], r[5])] = max(last.get((r[0], r[5]), r[2]), r[2])
    kept: dict[str, list[str]] = defaultdict(list)
    for (c, p), _at in sorted(
        last.items(), key=lambda kv: (kv[0][0], -kv[1].timestamp(), kv[0][1])
    ):
        if len(kept[c]) < 3:
            kept[c].append(p)
    pairs = Counter(pair for ps in kept.values() for pair in combinations(sorted(ps), 2))
    expected = pd.DataFrame(
        [{"product_a": a, "product_b": b, "baskets": v} for (a, b), v in pairs.items()]
    )
    for df in (got, expected):
        df["key"] = df.product_a + "|" + df.product_b
    assert_frames_match(got, expected, key="key")


def test_item_neighbours_are_the_top_k_by_cosine(load):
    t = load({"orders": frame("orders", ORDERS)})
    got = item_neighbours(t["orders"], as_of=AS_OF, k=2, max_items=None).to_pandas()
    baskets = _baskets("customer")
    items = Counter(p for b in baskets.values() for p in b)
    pairs = Counter(pair for b in baskets.values() for pair in combinations(sorted(b), 2))
    scored: dict[str, list[tuple[float, str, int]]] = defaultdict(list)
    for (a, b), n in pairs.items():
        sim = n / math.sqrt(items[a] * items[b])
        scored[a].append((-sim, b, n))
        scored[b].append((-sim, a, n))
    expected = pd.DataFrame(
        [
            {"product_id": a, "neighbour_id": b, "baskets": n, "similarity": -s}
            for a, options in scored.items()
            for s, b, n in sorted(options)[:2]
        ]
    )
    for df in (got, expected):
        df["key"] = df.product_id + "|" + df.neighbour_id
    assert_frames_match(got, expected, key="key")


def test_customer_products_decay_each_order_by_its_age(load):
    t = load({"orders": frame("orders", ORDERS)})
    got = customer_products(t["orders"], as_of=AS_OF, half_life_days=30).to_pandas()
    days: dict[tuple[str, str], dict[str, date]] = defaultdict(dict)
    for r in _sold():
        seen = days[(r[0], r[5])]
        seen[r[1]] = min(seen.get(r[1], r[2].date()), r[2].date())
    rows = []
    for (c, p), per_order in days.items():
        ages = [(AS_OF - d).days for d in per_order.values()]
        rows.append(
            {
                "customer_id": c,
                "product_id": p,
                "orders": len(ages),
                "last_days": min(ages),
                "weight": sum(0.5 ** (a / 30) for a in ages),
            }
        )
    expected = pd.DataFrame(rows)
    for df in (got, expected):
        df["key"] = df.customer_id + "|" + df.product_id
    assert_frames_match(got, expected, key="key")
    recent = customer_products(t["orders"], as_of=AS_OF, half_life_days=30, since=SINCE)
    recent_keys = set(recent.to_pandas().pipe(lambda d: d.customer_id + "|" + d.product_id))
    assert recent_keys == {f"{r[0]}|{r[5]}" for r in _sold(SINCE)}


def _features_oracle(events: list[tuple]) -> pd.DataFrame:
    lines = pd.DataFrame(
        ORDERS,
        columns=["customer_id", "order_id", "ordered_at", "amount", "quantity", "product_id",
                 "category", "channel", "store_id", "discount", "cost"],
    )  # fmt: skip
    lines = lines[lines.ordered_at < END]
    rows = []
    for c, mine in lines.groupby("customer_id"):
        orders = mine.groupby("order_id").agg(at=("ordered_at", "min"), amount=("amount", "sum"))
        first = mine.sort_values("ordered_at", kind="stable").groupby("order_id").head(1)
        channel = first.set_index("order_id").channel.fillna("(none)")
        sold = mine[(mine.amount > 0) & mine.product_id.notna()]
        products = sold.groupby("order_id").product_id.nunique().reindex(orders.index).fillna(0)
        by_cat = sold.groupby(sold.category.fillna("(none)")).order_id.nunique()
        hours = orders["at"].dt.hour
        views = sum(1 for e in events if e[0] == c and e[1] < END and e[2] == "view")
        carts = sum(1 for e in events if e[0] == c and e[1] < END and e[2] == "cart")
        n = len(orders)
        rows.append(
            {
                "customer_id": c,
                "orders": n,
                "avg_order_value": orders.amount.sum() / n,
                "recency_days": (AS_OF - orders["at"].max().date()).days,
                "tenure_days": (AS_OF - orders["at"].min().date()).days,
                "basket_size": float(products.mean()),
                "categories": len(by_cat),
                "top_category_share": (by_cat.max() / n) if len(by_cat) else 0.0,
                "discount_share": float((mine.discount.fillna(0) > 0).mean()),
                "return_share": float((mine.amount < 0).mean()),
                "weekend_share": float((orders["at"].dt.day_of_week >= 5).mean()),
                "night_share": float(hours.between(0, 5).mean()),
                "morning_share": float(hours.between(6, 11).mean()),
                "afternoon_share": float(hours.between(12, 17).mean()),
                "evening_share": float(hours.between(18, 23).mean()),
                "main_channel_share": channel.value_counts().max() / n,
                "views": views,
                "carts": carts,
            }
        )
    return pd.DataFrame(rows)


EVENTS = [
    ("c00", datetime(2024, 6, 1, 10), "view", "p1"),
    ("c00", datetime(2024, 6, 1, 10, 5), "cart", "p1"),
    ("c00", datetime(2024, 6, 2, 10), "view", "p2"),
    ("c01", datetime(2024, 5, 1, 10), "view", "p3"),
    ("c02", datetime(2024, 2, 1, 10), "view", "p3"),  # before SINCE: not in the funnel window
    ("c02", datetime(2024, 6, 5, 10), "cart", "p3"),  # a cart without a view in the window
    ("c05", datetime(2024, 7, 2, 10), "view", "p1"),  # after as_of
    ("c99", datetime(2024, 6, 3, 10), "view", "p1"),  # browses, never buys
    ("c99", datetime(2024, 6, 3, 10, 1), "cart", "p1"),
]


def test_behaviour_features_match_the_oracle(load):
    t = load({"orders": frame("orders", ORDERS), "events": frame("events", EVENTS)})
    got = behaviour_features(t["orders"], t["events"], as_of=AS_OF).to_pandas()
    assert list(got.columns) == ["customer_id", *FEATURES]
    assert_frames_match(got, _features_oracle(EVENTS))
    without_events = behaviour_features(t["orders"], as_of=AS_OF).to_pandas()
    assert (without_events[["views", "carts"]] == 0).all().all()


SEGMENTS = pd.DataFrame(
    {"customer_id": [f"c{c:02d}" for c in range(12)], "segment": ["x", "y", "z"] * 4}
)


def _segment_of(customer: str) -> str | None:
    found = SEGMENTS.set_index("customer_id").segment
    return found.get(customer)


def test_weekday_hour_preferences_and_top_products_by_segment(load):
    t = load({"orders": frame("orders", ORDERS), "segments": SEGMENTS})
    orders, segments = t["orders"], t["segments"]
    lo = datetime.combine(SINCE + timedelta(days=1), datetime.min.time())
    firsts: dict[tuple[str, str], datetime] = {}
    for r in ORDERS:
        if lo <= r[2] < END and _segment_of(r[0]):
            firsts[(r[0], r[1])] = min(firsts.get((r[0], r[1]), r[2]), r[2])
    heat = Counter()
    heat_customers: dict[tuple, set[str]] = defaultdict(set)
    for (c, _o), at in firsts.items():
        cell = (_segment_of(c), at.weekday(), at.hour)
        heat[cell] += 1
        heat_customers[cell].add(c)
    got = weekday_hour(orders, segments, as_of=AS_OF, since=SINCE).to_pandas()
    expected = pd.DataFrame(
        [
            {"segment": s, "weekday": d, "hour": h, "orders": n,
             "customers": len(heat_customers[(s, d, h)])}
            for (s, d, h), n in heat.items()
        ]
    )  # fmt: skip
    for df in (got, expected):
        df["key"] = df.segment + df.weekday.astype(str) + "-" + df.hour.astype(str)
    assert_frames_match(got, expected, key="key")

    sold = [r for r in _sold(SINCE) if _segment_of(r[0])]
    stats: dict[tuple[str, str], dict] = defaultdict(
        lambda: {"customers": set(), "orders": set(), "revenue": 0.0}
    )
    placed: dict[str, set] = defaultdict(set)
    for r in sold:
        s = _segment_of(r[0])
        entry = stats[(s, r[6])]
        entry["customers"].add(r[0])
        entry["orders"].add((r[0], r[1]))
        entry["revenue"] += r[3]
        placed[s].add((r[0], r[1]))
    expected = pd.DataFrame(
        [
            {"segment": s, "value": v, "customers": len(e["customers"]),
             "orders": len(e["orders"]), "revenue": e["revenue"],
             "order_share": len(e["orders"]) / len(placed[s])}
            for (s, v), e in stats.items()
        ]
    )  # fmt: skip
    got = preferences(orders, segments, column="category", as_of=AS_OF, since=SINCE).to_pandas()
    for df in (got, expected):
        df["key"] = df.segment + "|" + df.value
    assert_frames_match(got, expected, key="key")

    per_product: dict[tuple[str, str], dict] = defaultdict(lambda: {"c": set(), "o": set()})
    for r in sold:
        per_product[(_segment_of(r[0]), r[5])]["c"].add(r[0])
        per_product[(_segment_of(r[0]), r[5])]["o"].add((r[0], r[1]))
    top = (
        pd.DataFrame(
            [
                {"segment": s, "product_id": p, "customers": len(e["c"]), "orders": len(e["o"])}
                for (s, p), e in per_product.items()
            ]
        )
        .sort_values(
            ["segment", "customers", "orders", "product_id"], ascending=[True, False, False, True]
        )
        .groupby("segment")
        .head(2)
    )
    got = top_products(orders, segments, as_of=AS_OF, since=SINCE, n=2).to_pandas()
    got = got.sort_values(["segment", "rank"])
    assert list(zip(got.segment, got.product_id, strict=True)) == list(
        zip(top.segment, top.product_id, strict=True)
    )
    assert got.groupby("segment")["rank"].apply(list).tolist() == [[1, 2]] * 3


def test_funnel_counts_views_then_carts_then_orders(load):
    t = load(
        {
            "orders": frame("orders", ORDERS),
            "events": frame("events", EVENTS),
            "segments": pd.DataFrame({"customer_id": ["c00", "c01", "c02", "c99"],
                                      "segment": ["s"] * 4}),
        }
    )  # fmt: skip
    got = funnel(t["events"], t["orders"], t["segments"], as_of=AS_OF, since=SINCE).to_pandas()
    lo = datetime.combine(SINCE + timedelta(days=1), datetime.min.time())
    ordered = {c: {r[1] for r in ORDERS if r[0] == c and lo <= r[2] < END}
               for c in ("c00", "c01", "c02", "c99")}  # fmt: skip
    row = got.iloc[0].to_dict()
    assert row["segment"] == "s" and len(got) == 1
    assert row["viewers"] == 3  # c00, c01, c99 (c02's view is before the window)
    assert row["carters"] == 2  # c00, c99 (c02 carted without a view in the window)
    assert row["buyers"] == int(bool(ordered["c00"]))  # c99 never buys
    assert row["ordering_customers"] == sum(bool(v) for v in ordered.values())
    assert (row["views"], row["carts"]) == (4, 3)
    assert row["orders"] == sum(len(v) for v in ordered.values())


def test_product_catalogue_prefers_the_catalogue_and_keeps_unlisted_products(load):
    products = frame("products", [("p1", "One", "Z"), ("p7", "Seven", None), ("p9", "Nine", "Q")])
    t = load({"orders": frame("orders", ORDERS), "products": products})
    got = product_catalogue(t["orders"], t["products"]).to_pandas().set_index("product_id")
    assert got.loc["p1", "name"] == "One" and got.loc["p1", "category"] == "Z"
    assert got.loc["p7", "category"] == CATEGORY["p7"]  # the catalogue has none: orders' one
    assert pd.isna(got.loc["p2", "name"]) and got.loc["p2", "category"] == CATEGORY["p2"]
    assert got.loc["p9", "name"] == "Nine"  # listed, never sold
    assert set(got.index) == {*PRODUCTS, "p9"}


@pytest.mark.spark
def test_spark_equals_duckdb_on_generated_data(spark_con, tmp_path):
    """Parity at a realistic size: both engines over the same generated orders."""
    from tierwise.services.generate import generate
    from tierwise.services.warehouse import duckdb_connect

    generate(400, tmp_path / "g", seed=5)
    orders = pd.read_parquet(tmp_path / "g" / "orders.parquet")
    orders["ordered_at"] = orders["ordered_at"].astype("datetime64[us]")
    events = pd.read_parquet(tmp_path / "g" / "events.parquet")
    events["occurred_at"] = events["occurred_at"].astype("datetime64[us]")
    duck = duckdb_connect(tmp_path / "w.duckdb")
    spark_con.raw_sql("SET spark.sql.execution.arrow.pyspark.enabled=true")
    as_of = orders.ordered_at.max().date()
    results = []
    for con in (duck, spark_con):
        o = con.create_table("parity_orders", orders, overwrite=True)
        e = con.create_table("parity_events", events, overwrite=True)
        results.append(
            {
                "neighbours": item_neighbours(o, as_of=as_of, k=5).to_pandas(),
                "rules": association_rules(o, as_of=as_of, min_baskets=2).to_pandas(),
                "weights": customer_products(o, as_of=as_of, half_life_days=90).to_pandas(),
                "features": behaviour_features(o, e, as_of=as_of).to_pandas(),
            }
        )
    keys = {
        "neighbours": ("product_id", "neighbour_id"),
        "rules": ("antecedent", "consequent"),
        "weights": ("customer_id", "product_id"),
        "features": ("customer_id",),
    }
    for name, cols in keys.items():
        a, b = (r[name].copy() for r in results)
        assert len(a) > 50, name
        for df in (a, b):
            df["key"] = df[list(cols)].astype(str).agg("|".join, axis=1)
        assert_frames_match(a, b, key="key")
