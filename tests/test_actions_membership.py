"""Membership levels from warehouse orders: the rolling window's edges, every run evaluating,
review date and grace period across evaluations, counts per evaluation, history, scope."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tierwise.core.errors import ConflictError, NotFoundError
from tierwise.core.settings import Settings
from tierwise.engine.membership import rolling_value
from tierwise.services.access import Principal
from tierwise.services.ingest import ingest
from tierwise.services.membership import (
    customer_membership,
    evaluate_levels,
    evaluate_now,
    evaluation_history,
    level_summary,
)
from tierwise.services.run import run
from tierwise.services.serving import opened_store
from tierwise.services.warehouse import connect

ADMIN = Principal(0, "root", "root", "admin", None)
AGENT = Principal(0, "ag1", "ag1", "agent", "north")
Y_END = date(2024, 12, 31)

ORDERS = [
    # customer, day, amount
    ("A", "2024-06-01", 1000.00),  # exactly silver
    ("B", "2024-06-01", 999.99),  # a cent short
    ("C", "2024-01-05", 5000.00),  # gold, leaves the window on 2025-01-05
    ("D", Y_END - timedelta(days=365), 9000.0),  # one day outside the window
    ("D", Y_END - timedelta(days=364), 1000.0),  # the window's first day
    ("E", "2024-08-01", 6000.00),
    ("E", "2024-08-09", -2000.00),  # a return
    ("F", "2024-02-01", 100.00),
    ("F", "2025-01-20", 20000.00),  # diamond at once
    ("G", "2024-01-10", 5000.00),  # gold, short after the review ...
    ("G", "2025-01-20", 5000.00),  # ... and back within grace
]


def write_project(root: Path) -> Settings:
    frame = pd.DataFrame(ORDERS, columns=["customer_id", "day", "amount"])
    frame["ordered_at"] = pd.to_datetime(frame.day.astype(str)) + pd.Timedelta(hours=12)
    frame["order_id"] = [f"O{i}" for i in range(len(frame))]
    frame[["customer_id", "order_id", "ordered_at", "amount"]].to_csv(
        root / "orders.csv", index=False
    )
    (root / "customers.csv").write_text("customer_id,account_manager\nA,ag1\nC,ag1\nB,ag2\n")
    (root / "tierwise.toml").write_text(
        '[sources.orders]\npath = "orders.csv"\n[sources.customers]\npath = "customers.csv"\n'
        "[models]\nenabled = false\n"
        "[membership]\nreview_dates = ['01-01']\ngrace_days = 30\n"
    )
    settings = Settings.load(root / "tierwise.toml")
    ingest(settings)
    return settings


@pytest.fixture
def project(tmp_path: Path) -> Settings:
    return write_project(tmp_path)


def levels(settings: Settings) -> dict[str, str]:
    with opened_store(settings) as store:
        return {c: customer_membership(settings, store, ADMIN, c).level for c in "ABCDEFG"}


def test_every_run_evaluates_levels_on_the_rolling_window(project: Settings):
    done = run(project, as_of=Y_END)
    assert "membership" in done.stage_seconds
    assert levels(project) == {
        "A": "silver",
        "B": "regular",
        "C": "gold",
        "D": "silver",
        "E": "silver",
        "F": "regular",
        "G": "gold",
    }
    with opened_store(project) as store:
        (evaluation,) = evaluation_history(store)
        d = customer_membership(project, store, ADMIN, "D")
    assert (evaluation.run_id, evaluation.as_of, evaluation.customers) == (done.run_id, Y_END, 7)
    assert (evaluation.joined, evaluation.upgrades, evaluation.downgrades) == (7, 0, 0)
    assert d.value == 1000.0 and d.next_level == "gold" and d.to_next_level == 4000.0
    assert [(h.change, h.to_level) for h in d.history] == [("join", "silver")]


def test_downgrades_wait_for_the_review_and_the_grace_period(project: Settings):
    run(project, as_of=Y_END)
    after_review = evaluate_now(project, date(2025, 1, 15))
    assert (after_review.upgrades, after_review.downgrades, after_review.in_grace) == (0, 0, 3)
    now = levels(project)  # C, D and G fell short when their oldest orders left the window
    assert (now["C"], now["D"], now["G"]) == ("gold", "silver", "gold")
    with opened_store(project) as store:
        c = customer_membership(project, store, ADMIN, "C")
        assert (c.grace_until, c.value) == (date(2025, 1, 31), 0.0)
        with pytest.raises(ConflictError, match="only move forward"):
            evaluate_levels(project, store, connect(project), date(2025, 1, 10))
    grace_end = evaluate_now(project, date(2025, 1, 31))
    assert (grace_end.upgrades, grace_end.downgrades, grace_end.in_grace) == (1, 2, 0)
    now = levels(project)
    assert (now["C"], now["D"], now["G"], now["F"]) == ("regular", "regular", "gold", "diamond")
    assert now["A"] == "silver"  # A's June order still counts on 2025-01-31
    with opened_store(project) as store:
        c = customer_membership(project, store, ADMIN, "C")
        f = customer_membership(project, store, ADMIN, "F")
        counts = [(e.as_of, e.upgrades, e.downgrades) for e in evaluation_history(store)]
    assert [(h.changed_on, h.change, h.from_level, h.to_level) for h in c.history] == [
        (Y_END, "join", None, "gold"),
        (date(2025, 1, 31), "downgrade", "gold", "regular"),
    ]
    assert f.since == date(2025, 1, 31) and f.next_level is None and f.to_next_level is None
    assert counts == [
        (date(2025, 1, 31), 1, 2),
        (date(2025, 1, 15), 0, 0),
        (Y_END, 0, 0),
    ]
    backtest = run(project, as_of=date(2024, 6, 30))  # older than the last evaluation: skipped
    assert "membership" in backtest.stage_seconds
    with opened_store(project) as store:
        assert len(evaluation_history(store)) == 3


def test_levels_are_read_through_the_viewers_scope(project: Settings):
    run(project, as_of=Y_END)
    with opened_store(project) as store:
        summary = level_summary(project, store, AGENT)
        counts = {x.code: x.customers for x in summary.levels}
        assert counts == {"regular": 0, "silver": 1, "gold": 1, "diamond": 0}  # A and C
        assert sum(x.customers for x in level_summary(project, store, ADMIN).levels) == 7
        assert customer_membership(project, store, AGENT, "A").level == "silver"
        with pytest.raises(NotFoundError) as hidden:
            customer_membership(project, store, AGENT, "B")
        with pytest.raises(NotFoundError) as missing:
            customer_membership(project, store, AGENT, "Z")
    assert str(hidden.value) == "no customer B" and str(missing.value) == "no customer Z"


def test_points_are_whole_and_count_orders(con):
    frame = pd.DataFrame(
        {
            "customer_id": ["A", "A", "B", "C"],
            "order_id": ["1", "2", "3", "4"],
            "ordered_at": pd.to_datetime(
                ["2024-12-31 23:00", "2024-12-30 10:00", "2024-03-01 10:00", "2023-12-31 10:00"]
            ),
            "amount": [10.75, 5.0, -50.0, 999.0],
        }
    )
    con.create_table("orders", frame)
    expr = rolling_value(
        con.table("orders"),
        as_of=Y_END,
        window_days=365,
        basis="points",
        points_per_unit=2.0,
        points_per_order=10.0,
    )
    got = {
        r["customer_id"]: (r["spend"], r["orders"], r["value"])
        for r in expr.to_pyarrow().to_pylist()
    }
    # A: floor(15.75 × 2) + 2 × 10; B: negative spend gives no points; C: outside the window
    assert got == {"A": (15.75, 2, 51.0), "B": (-50.0, 1, 0.0), "C": (0.0, 0, 0.0)}
