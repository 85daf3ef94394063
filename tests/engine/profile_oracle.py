"""Plain pandas / Python re-statement of DESIGN.md's profile definitions, customer by customer.

Deliberately written without the engine's structure (no windows, no joins of aggregates) so that
agreement means something.
"""

from __future__ import annotations

import itertools
import math
import statistics
from datetime import date, datetime, timedelta

import pandas as pd

from tierwise.core.settings import LifecycleSettings, ScoringSettings
from tierwise.core.vocab import CLASS8_BY_RFM

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
BANDS = {"night": range(0, 6), "morning": range(6, 12), "afternoon": range(12, 18)}
BANDS["evening"] = range(18, 24)


def num(x: float) -> str:
    """The engine's number spelling: two decimals, half away from zero, no trailing zeros."""
    cents = int(math.copysign(math.floor(abs(x * 100) + 0.5), x))
    whole, frac = divmod(abs(cents), 100)
    text = f"{whole}.{frac:02d}".rstrip("0").rstrip(".")
    return ("-" if cents < 0 else "") + text


def pct(share: float) -> str:
    return f"{share * 100:g}%"


def _cut(df: pd.DataFrame | None, column: str, as_of: date) -> pd.DataFrame | None:
    if df is None:
        return None
    end = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
    return df[df[column] < end]


def _latest(df: pd.DataFrame, key: str) -> dict[str, pd.Series]:
    out = {}
    for _, row in df.sort_values(["_ingest_id", "_line"]).iterrows():
        out[row[key]] = row
    return out


def _val(x: object) -> object:
    return None if pd.isna(x) else x


def _facts(cid: str, lines: pd.DataFrame, as_of: date, margin_rate: float) -> dict:
    f: dict = {"customer_id": cid}
    mine = lines[lines.customer_id == cid]
    if mine.empty:
        f.update(orders=0, order_lines=0, order_days=0, revenue=0.0, categories=0)
        f.update(gross_margin=0.0, preferred_category=None, preferred_channel=None)
        for k in ["first_order_at", "last_order_at", "avg_order_value", "recency_days"]:
            f[k] = None
        for k in ["tenure_days", "median_interval_days", "discount_share", "last_gap"]:
            f[k] = None
        for k in [f"share_{d}" for d in WEEKDAYS] + [f"share_{b}" for b in BANDS]:
            f[k] = None
        return f
    placed = mine.groupby("order_id").ordered_at.min()
    days = sorted({t.date() for t in mine.ordered_at})
    gaps = [(b - a).days for a, b in itertools.pairwise(days)]
    f["first_order_at"] = mine.ordered_at.min()
    f["last_order_at"] = mine.ordered_at.max()
    f["orders"] = len(placed)
    f["order_lines"] = len(mine)
    f["order_days"] = len(days)
    f["revenue"] = float(mine.amount.sum())
    f["avg_order_value"] = f["revenue"] / f["orders"]
    f["recency_days"] = (as_of - days[-1]).days
    f["tenure_days"] = (as_of - days[0]).days
    f["median_interval_days"] = float(statistics.median(gaps)) if gaps else None
    f["last_gap"] = gaps[-1] if gaps else None
    f["categories"] = mine.category.dropna().nunique()
    for col in ("category", "channel"):
        counts = mine.dropna(subset=[col]).groupby(col).order_id.nunique()
        best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        f[f"preferred_{col}"] = best[0][0] if best else None
    for i, d in enumerate(WEEKDAYS):
        f[f"share_{d}"] = sum(t.weekday() == i for t in placed) / len(placed)
    for band, hours in BANDS.items():
        f[f"share_{band}"] = sum(t.hour in hours for t in placed) / len(placed)
    f["discount_share"] = sum(bool(d > 0) for d in mine.discount.fillna(0)) / len(mine)
    f["gross_margin"] = float(
        sum(
            a - c if not pd.isna(c) else a * margin_rate
            for a, c in zip(mine.amount, mine.cost, strict=True)
        )
    )
    return f


def _payback(cid: str, lines: pd.DataFrame, acq: float, margin_rate: float) -> int | None:
    if acq <= 0:
        return None
    mine = lines[lines.customer_id == cid].sort_values("ordered_at")
    if mine.empty:
        return None
    first = mine.ordered_at.min().date()
    total = 0.0
    for day, rows in mine.groupby(mine.ordered_at.dt.date):
        total += sum(
            a - c if not pd.isna(c) else a * margin_rate
            for a, c in zip(rows.amount, rows.cost, strict=True)
        )
        if total >= acq:
            return (day - first).days
    return None


def _quantile_scores(values: dict[str, float], higher_is_better: bool) -> dict[str, int]:
    n = len(values)
    out = {}
    for cid, v in values.items():
        worse = sum((w < v) if higher_is_better else (w > v) for w in values.values())
        out[cid] = 1 + math.floor(5 * worse / n)
    return out


def _fixed(x: float, cuts: list, low_is_good: bool) -> int:
    scores = [5, 4, 3, 2, 1] if low_is_good else [1, 2, 3, 4, 5]
    for c, s in zip(cuts, scores, strict=False):
        if x <= c:
            return s
    return scores[-1]


def profiles(
    frames: dict[str, pd.DataFrame],
    *,
    as_of: date,
    scoring: ScoringSettings,
    lifecycle: LifecycleSettings,
    value_column: str = "revenue",
) -> pd.DataFrame:
    lines = _cut(frames["orders"], "ordered_at", as_of).copy()
    if "products" in frames:
        cat = {k: r.category for k, r in _latest(frames["products"], "product_id").items()}
        lines["category"] = [
            c if not pd.isna(c) else cat.get(p)
            for c, p in zip(lines.category, lines.product_id, strict=True)
        ]
    customers = frames.get("customers")
    if customers is not None:
        end = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
        customers = customers[customers.registered_at.isna() | (customers.registered_at < end)]
        customers = _latest(customers, "customer_id")
    events = _cut(frames.get("events"), "occurred_at", as_of)
    inter = _cut(frames.get("interactions"), "occurred_at", as_of)
    feedback = _cut(frames.get("feedback"), "responded_at", as_of)
    costs = _cut(frames.get("costs"), "incurred_at", as_of)

    ids = set(lines.customer_id) | set(customers or ())
    for df in (events, inter):
        if df is not None:
            ids |= set(df.customer_id)

    rows = []
    for cid in sorted(ids):
        f = _facts(cid, lines, as_of, scoring.margin_rate)
        ev = events[events.customer_id == cid] if events is not None else pd.DataFrame()
        f["views"] = int((ev.event_type == "view").sum()) if len(ev) else 0
        f["carts"] = int((ev.event_type == "cart").sum()) if len(ev) else 0
        f["browse_to_buy"] = f["orders"] / f["views"] if f["views"] else None
        it = inter[inter.customer_id == cid] if inter is not None else pd.DataFrame()
        end = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
        comp = it[it.kind == "complaint"] if len(it) else it
        f["complaints"] = len(comp)
        f["unresolved_complaints"] = (
            int(sum(pd.isna(r) or r >= end for r in comp.resolved_at)) if len(comp) else 0
        )
        f["follow_ups"] = int((it.kind == "follow_up").sum()) if len(it) else 0
        fb = feedback[feedback.customer_id == cid] if feedback is not None else pd.DataFrame()
        if len(fb):
            csat = fb.dropna(subset=["csat"]).sort_values(["responded_at", "_ingest_id", "_line"])
            f["last_csat"] = float(csat.csat.iloc[-1]) if len(csat) else None
            nps = fb.nps.dropna()
            f["mean_nps"] = float(nps.mean()) if len(nps) else None
        else:
            f["last_csat"] = f["mean_nps"] = None
        co = costs[costs.customer_id == cid] if costs is not None else pd.DataFrame()

        def kind_total(kind: str, co: pd.DataFrame = co) -> float | None:
            if not len(co) or not (co.kind == kind).any():
                return None
            return float(co[co.kind == kind].amount.sum())

        f["service_cost"] = float(it.cost.fillna(0).sum() if len(it) else 0) + (
            kind_total("service") or 0.0
        )
        f["marketing_cost"] = kind_total("marketing") or 0.0
        registered = customers.get(cid) if customers is not None else None
        acq = _val(registered.acquisition_cost) if registered is not None else None
        if acq is None:
            acq = kind_total("acquisition")
        f["acquisition_cost"] = float(acq or 0.0)
        f["profit"] = (
            f["gross_margin"] - f["service_cost"] - f["marketing_cost"] - f["acquisition_cost"]
        )
        f["is_unprofitable"] = f["profit"] < 0
        f["cac_payback_days"] = _payback(cid, lines, f["acquisition_cost"], scoring.margin_rate)
        rows.append(f)

    buyers = [r for r in rows if r["orders"] > 0]
    _scores(rows, buyers, scoring, value_column)
    _stages(rows, buyers, lifecycle)
    out = pd.DataFrame(rows).drop(columns=["last_gap"])
    return out


def _scores(rows: list[dict], buyers: list[dict], s: ScoringSettings, value_column: str) -> None:
    for r in rows:
        for k in ["r_score", "f_score", "m_score", "rfm_code", "rfm_class8", "rfm_class8_reason"]:
            r[k] = None
        r["abc_class"] = r["abc_reason"] = None
        r["rfm_segment"], r["rfm_segment_reason"] = "no_orders", "no orders"
        r["value_tier"], r["value_tier_reason"] = "low", "no orders"
    if not buyers:
        return
    if s.score_method == "quantile":
        rec = _quantile_scores({b["customer_id"]: b["recency_days"] for b in buyers}, False)
        frq = _quantile_scores({b["customer_id"]: b["orders"] for b in buyers}, True)
        mon = _quantile_scores({b["customer_id"]: b["revenue"] for b in buyers}, True)
    for b in buyers:
        cid = b["customer_id"]
        if s.score_method == "quantile":
            b["r_score"], b["f_score"], b["m_score"] = rec[cid], frq[cid], mon[cid]
        else:
            b["r_score"] = _fixed(b["recency_days"], s.recency_days_cuts, True)
            b["f_score"] = _fixed(b["orders"], s.orders_cuts, False)
            b["m_score"] = _fixed(b["revenue"], s.revenue_cuts, False)
        b["rfm_code"] = f"{b['r_score']}{b['f_score']}{b['m_score']}"
        rule = next(
            r for r in s.scheme_rules() if r.matches(b["r_score"], b["f_score"], b["m_score"])
        )
        b["rfm_segment"], b["rfm_segment_reason"] = rule.segment, rule.reason

    centre = {"mean": statistics.mean, "median": statistics.median}.get(s.class8_method)
    if centre is None:
        cuts = (s.class8_recency_days, s.class8_orders, s.class8_revenue)
    else:
        cuts = tuple(
            float(centre([b[c] for b in buyers])) for c in ("recency_days", "orders", "revenue")
        )
    for b in buyers:
        rh, fh, mh = b["recency_days"] < cuts[0], b["orders"] > cuts[1], b["revenue"] > cuts[2]
        b["rfm_class8"] = CLASS8_BY_RFM[(rh, fh, mh)].value
        hl = {True: "high", False: "low"}
        b["rfm_class8_reason"] = (
            f"R {hl[rh]} (recency {b['recency_days']} {'<' if rh else '≥'} {num(cuts[0])}), "
            f"F {hl[fh]} (orders {b['orders']} {'>' if fh else '≤'} {num(cuts[1])}), "
            f"M {hl[mh]} (revenue {num(b['revenue'])} {'>' if mh else '≤'} {num(cuts[2])})"
            f" vs {s.class8_method}"
        )

    a, bcut = s.abc_cuts
    total = sum(b["revenue"] for b in buyers)
    above = 0.0
    for b in sorted(buyers, key=lambda b: (-b["revenue"], b["customer_id"])):
        share = above / total if total > 0 else None
        above += b["revenue"]
        if b["revenue"] <= 0:
            b["abc_class"], b["abc_reason"] = "C", "revenue ≤ 0"
        elif share is None:
            b["abc_class"], b["abc_reason"] = "C", "total revenue ≤ 0"
        else:
            text = f"customers ranked above hold {num(share * 100)}% of revenue"
            if share < a:
                b["abc_class"], b["abc_reason"] = "A", f"{text} (< {pct(a)})"
            elif share < bcut:
                b["abc_class"], b["abc_reason"] = "B", f"{text} (< {pct(bcut)})"
            else:
                b["abc_class"], b["abc_reason"] = "C", f"{text} (≥ {pct(bcut)})"

    h, m = s.value_tier_shares
    n = len(buyers)
    ranked = sorted(buyers, key=lambda b: (-b[value_column], b["customer_id"]))
    for pos, b in enumerate(ranked):
        b["value_tier"] = "high" if pos < h * n else "mid" if pos < (h + m) * n else "low"
        b["value_tier_reason"] = (
            f"rank {pos + 1} of {n} by {value_column} (high = top {pct(h)}, mid = next {pct(m)})"
        )


def _stages(rows: list[dict], buyers: list[dict], s: LifecycleSettings) -> None:
    own = [b["median_interval_days"] for b in buyers if b["median_interval_days"] is not None]
    population = statistics.median(own) if own else None
    for r in rows:
        if r["orders"] == 0:
            r["lifecycle_stage"], r["lifecycle_reason"] = "potential", "known, no orders yet"
            continue
        cad = r["median_interval_days"]
        cad_text = None
        if cad is None and population is not None:
            cad, cad_text = population, f"cadence {num(population)} (population median)"
        elif cad is not None:
            cad_text = f"cadence {num(cad)}"
        rec, ten = r["recency_days"], r["tenure_days"]
        last = f"last order {rec} days ago"
        dormant_after = max(s.min_dormant_days, s.dormant_cadence_factor * cad if cad else 0)
        if rec > s.churn_days:
            stage, why = "churned", f"{last} > churn_days {s.churn_days}"
        elif cad is not None and rec > s.churn_cadence_factor * cad:
            stage, why = "churned", f"{last} > {s.churn_cadence_factor:g} × {cad_text}"
        elif rec > dormant_after:
            detail = (
                " (min_dormant_days; no cadence known)"
                if cad is None
                else f" (max of min_dormant_days, {s.dormant_cadence_factor:g} × {cad_text})"
            )
            stage, why = "dormant", f"{last} > {num(dormant_after)}{detail}"
        elif (
            r["last_gap"] is not None and r["last_gap"] > s.churn_days and rec < s.reactivated_days
        ):
            stage = "reactivated"
            why = f"returned after a {r['last_gap']}-day gap (> churn_days {s.churn_days}), {last}"
        elif ten < s.new_days:
            stage, why = "new", f"first order {ten} days ago (< new_days {s.new_days})"
        elif r["orders"] >= s.loyal_min_orders and ten >= s.loyal_min_tenure_days:
            stage = "loyal"
            why = (
                f"{r['orders']} orders (≥ {s.loyal_min_orders}) over {ten} days "
                f"(≥ {s.loyal_min_tenure_days})"
            )
        else:
            stage, why = "active", f"{last}, within {num(dormant_after)} days"
        r["lifecycle_stage"], r["lifecycle_reason"] = stage, why


def assert_frames_match(got: pd.DataFrame, expected: pd.DataFrame, key: str = "customer_id"):
    """Same columns, same rows by key, same values; floats equal to 1e-9 relative."""
    assert sorted(got.columns) == sorted(expected.columns)
    expected = expected[list(got.columns)]
    got = got.sort_values(key).reset_index(drop=True)
    expected = expected.sort_values(key).reset_index(drop=True)
    assert list(got[key]) == list(expected[key])
    problems = []
    for col in got.columns:
        for k, g, e in zip(got[key], got[col], expected[col], strict=True):
            if not _same(g, e):
                problems.append(f"{col}[{k}]: engine {g!r} != expected {e!r}")
    assert not problems, "\n".join(problems)


def _same(g: object, e: object) -> bool:
    if pd.isna(g) or pd.isna(e):
        return bool(pd.isna(g) and pd.isna(e))
    if isinstance(e, float) or isinstance(g, float):
        return math.isclose(float(g), float(e), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(g, pd.Timestamp) or isinstance(e, pd.Timestamp):
        return pd.Timestamp(g) == pd.Timestamp(e)
    return g == e
