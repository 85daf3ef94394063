"""A small hand-made warehouse for engine tests: every row is here for a reason (see comments)."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd

from tierwise.core.contracts import TABLES

AS_OF = date(2024, 6, 30)

_TEXT = pd.StringDtype("python")
_DTYPES = {"id": _TEXT, "text": _TEXT, "timestamp": "datetime64[us]", "number": "Float64"}


def frame(table: str, rows: list[tuple], ingest: str = "i1") -> pd.DataFrame:
    """Rows in contract column order (trailing optional columns may be left out), plus lineage."""
    names = TABLES[table].names
    records = [dict(zip(names, r, strict=False)) for r in rows]
    df = pd.DataFrame(records, columns=list(names))
    for c in TABLES[table].columns:
        df[c.name] = df[c.name].astype(_DTYPES.get(c.kind, "boolean"))
    df["attributes"] = pd.array(["{}"] * len(df), dtype=_TEXT)
    df["_source"] = pd.array([f"{table}.csv"] * len(df), dtype=_TEXT)
    df["_line"] = pd.array(range(2, len(df) + 2), dtype="int64")
    df["_ingest_id"] = pd.array([ingest] * len(df), dtype=_TEXT)
    df["_row_hash"] = pd.array([f"{table}{i}" for i in range(len(df))], dtype=_TEXT)
    return df


def ts(s: str) -> datetime:
    return datetime.fromisoformat(s)


# customer_id, order_id, ordered_at, amount, quantity, product_id, category, channel, store_id,
# discount, cost
ORDERS = [
    # c01: frequent and recent; two orders on one day; a multi-line order; one after as_of.
    ("c01", "o01", ts("2024-01-05 09:00"), 200, 1, "p1", "A", "app", "s1", 0, 120),
    ("c01", "o02", ts("2024-02-10 13:30"), 150, 1, "p2", "B", "web", "s1", 10, None),
    ("c01", "o02", ts("2024-02-10 13:30"), 50, 1, "p1", None, "web", "s1", None, None),
    ("c01", "o03", ts("2024-03-15 20:00"), 200, 2, "p2", "B", "app", "s1", 0, None),
    ("c01", "o04", ts("2024-04-20 02:15"), 200, 1, "p3", "A", "web", "s1", 5, 150),
    ("c01", "o05", ts("2024-06-28 10:00"), 100, 1, "p1", "A", "app", "s1", 0, None),
    ("c01", "o06", ts("2024-06-28 18:45"), 100, 1, "p1", "A", "store", "s2", 0, None),
    ("c01", "o99", ts("2024-07-02 10:00"), 999, 1, "p1", "A", "app", "s1", 0, None),
    # c02: one old order: churned by churn_days.
    ("c02", "o07", ts("2023-03-01 11:00"), 50, 1, "p2", "B", "web", "s1", 0, None),
    # c03: back after a 385-day gap, 10 days ago: reactivated.
    ("c03", "o08", ts("2023-06-01 12:00"), 80, 1, "p3", "C", "store", "s2", 0, None),
    ("c03", "o09", ts("2024-06-20 12:00"), 80, 1, "p3", "C", "store", "s2", 0, None),
    # c04: first order 15 days ago: new.
    ("c04", "o10", ts("2024-06-15 08:00"), 120, 1, "p1", "A", "app", "s1", 0, None),
    # c05: an order and its full return: revenue 0 (ABC C).
    ("c05", "o11", ts("2024-05-01 15:00"), 300, 1, "p2", "B", "web", "s1", 0, 200),
    ("c05", "o12", ts("2024-05-10 15:00"), -300, -1, "p2", "B", "web", "s1", 0, -200),
    # c06 and c07: identical histories, so identical scores (ties never split).
    ("c06", "o13", ts("2024-04-01 19:00"), 100, 1, "p1", "A", "app", "s1", 0, None),
    ("c07", "o14", ts("2024-04-01 07:00"), 100, 1, "p1", "A", "web", "s1", 0, None),
    # c08: every 20 days, silent for 45: dormant (45 > max(30, 2 × 20)), not churned (< 4 × 20).
    ("c08", "o15", ts("2024-04-06 10:00"), 60, 1, "p2", "B", "app", "s1", 0, None),
    ("c08", "o16", ts("2024-04-26 10:00"), 60, 1, "p3", "C", "app", "s1", 0, None),
    ("c08", "o17", ts("2024-05-16 10:00"), 60, 1, "p3", "C", "web", "s1", 0, None),
    # c09: five orders over 273 days, the last 29 days ago: loyal.
    ("c09", "o18", ts("2023-10-01 21:00"), 400, 1, "p3", "C", "app", "s1", 0, 300),
    ("c09", "o19", ts("2023-12-01 21:00"), 400, 1, "p3", "C", "app", "s1", 0, 300),
    ("c09", "o20", ts("2024-02-01 21:00"), 400, 1, "p3", "C", "app", "s1", 0, 300),
    ("c09", "o21", ts("2024-04-01 21:00"), 400, 1, "p3", "C", "app", "s1", 0, 300),
    ("c09", "o22", ts("2024-06-01 21:00"), 400, 1, "p3", "C", "app", "s1", 0, 300),
    # c10: two orders 91 days apart, the last 30 days ago: active.
    ("c10", "o23", ts("2024-03-01 16:00"), 250, 1, "p1", "A", "web", "s1", 25, None),
    ("c10", "o24", ts("2024-05-31 16:00"), 250, 1, "p2", "B", "app", "s1", 0, None),
    # c16: acquisition cost 150 (latest customer row) paid back on its second order day.
    ("c16", "o25", ts("2024-01-10 10:00"), 100, 1, "p1", None, "web", "s1", 0, None),
    ("c16", "o26", ts("2024-02-10 10:00"), 100, 1, "p9", None, "web", "s1", 0, None),
    # c17: a return bigger than the order: negative revenue.
    ("c17", "o27", ts("2024-06-01 09:00"), 20, 1, "p1", "A", "web", "s1", 0, None),
    ("c17", "o28", ts("2024-06-05 09:00"), -40, -2, "p1", "A", "web", "s1", 0, None),
    # c14 only orders after as_of: not a buyer at as_of.
    ("c14", "o29", ts("2024-07-05 09:00"), 70, 1, "p1", "A", "web", "s1", 0, None),
]

# customer_id, registered_at, name, phone, email, gender, age_band, income_band, region, city,
# acquisition_channel, acquisition_cost
CUSTOMERS = [
    ("c01", ts("2023-12-01 00:00"), "A", None, None, None, None, None, None, None, "ad", 500),
    ("c11", ts("2024-05-01 00:00"), "K", None, None, None, None, None, None, None, "ad", 30),
    ("c15", ts("2024-07-10 00:00"), "O", None, None, None, None, None, None, None, "ad", 10),
    ("c16", None, "P", None, None, None, None, None, None, None, "ad", 777),
    ("c16", None, "P", None, None, None, None, None, None, None, "ad", 999),
]
CUSTOMERS_LATER = [
    # A second ingest: its c16 row wins by _ingest_id although its _line is smaller.
    ("c16", None, "P2", None, None, None, None, None, None, None, "ad", 150),
    ("c03", ts("2023-05-01 00:00"), "C", None, None, None, None, None, None, None, "ad", None),
]

PRODUCTS = [("p1", "P1", "A"), ("p9", "P9", "Z"), ("p9", "P9", "Y")]

EVENTS = [
    ("c01", ts("2024-06-01 10:00"), "view"),
    ("c01", ts("2024-06-02 10:00"), "view"),
    ("c01", ts("2024-06-02 10:05"), "cart"),
    ("c01", ts("2024-06-03 10:00"), "view"),
    ("c01", ts("2024-06-04 10:00"), "view"),
    ("c04", ts("2024-06-10 10:00"), "view"),
    ("c04", ts("2024-06-30 23:59"), "view"),
    ("c04", ts("2024-07-01 00:00"), "view"),
    ("c12", ts("2024-06-11 10:00"), "view"),
    ("c12", ts("2024-06-11 10:01"), "search"),
    ("c14", ts("2024-06-11 10:00"), "click"),
    ("c06", ts("2024-03-30 10:00"), "search"),
]

# customer_id, occurred_at, kind, channel, outcome, handled_by, cost, resolved_at
INTERACTIONS = [
    ("c01", ts("2024-05-01 10:00"), "complaint", "phone", "ok", "u1", 12.5, ts("2024-05-02 10:00")),
    ("c01", ts("2024-05-03 10:00"), "complaint", "phone", None, "u1", 7.5, None),
    ("c01", ts("2024-05-04 10:00"), "follow_up", "phone", None, "u1", None, None),
    ("c05", ts("2024-05-11 10:00"), "complaint", "web", None, "u2", 20, ts("2024-07-03 10:00")),
    ("c13", ts("2024-06-01 10:00"), "complaint", "web", None, "u2", 5, None),
    ("c13", ts("2024-07-01 10:00"), "follow_up", "web", None, "u2", 5, None),
]

# customer_id, responded_at, survey, csat, nps
FEEDBACK = [
    ("c01", ts("2024-05-05 10:00"), "s", 4, 9),
    ("c01", ts("2024-06-05 10:00"), "s", 2, 6),
    ("c01", ts("2024-06-06 10:00"), "s", None, 10),
    ("c09", ts("2024-06-05 10:00"), "s", 5, None),
    ("c09", ts("2024-06-05 10:00"), "s", 3, None),
    ("c10", ts("2024-07-05 10:00"), "s", 1, 0),
]

# customer_id, incurred_at, kind, amount
COSTS = [
    ("c01", ts("2024-02-01 00:00"), "marketing", 15),
    ("c01", ts("2024-03-01 00:00"), "service", 4),
    ("c05", ts("2024-01-01 00:00"), "acquisition", 40),
    ("c05", ts("2024-02-01 00:00"), "acquisition", 35),
    ("c09", ts("2023-09-01 00:00"), "acquisition", 900),
    ("c11", ts("2024-05-02 00:00"), "marketing", 8),
    ("c01", ts("2024-07-01 00:00"), "marketing", 100),
]


def dataset() -> dict[str, pd.DataFrame]:
    return {
        "orders": frame("orders", ORDERS),
        "customers": pd.concat(
            [frame("customers", CUSTOMERS), frame("customers", CUSTOMERS_LATER, "i2")],
            ignore_index=True,
        ),
        "products": frame("products", PRODUCTS),
        "events": frame("events", EVENTS),
        "interactions": frame("interactions", INTERACTIONS),
        "feedback": frame("feedback", FEEDBACK),
        "costs": frame("costs", COSTS),
    }
