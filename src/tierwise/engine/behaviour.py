"""Behaviour patterns as expressions: who buys what, when, where, and together with what.

Everything here is counting (GROUP BY and one self-join), so it runs where the data lives, on
DuckDB or Spark alike, and only small results reach Python: per-customer item weights for the
recommenders, item neighbours, association rules, per-segment habits, preferences and funnels,
and the standardisable behaviour features the clusters are fitted on.

Basket pairs come from a self-join of distinct (basket, product) rows: the number of rows it
produces is the sum over baskets of (distinct items choose 2), so memory follows the data, never
products²; `max_items` bounds the pairs of a huge basket (a customer with thousands of items).
"""

from __future__ import annotations

import math
from datetime import date
from typing import Literal

import ibis
import ibis.expr.types as ir

from tierwise.engine.staging import KEY, days_between, end_of, latest, upto

Basket = Literal["order", "customer"]
HOUR_BANDS = {"night": (0, 5), "morning": (6, 11), "afternoon": (12, 17), "evening": (18, 23)}
SEGMENT = "segment"


def sold_lines(orders: ir.Table, /, *, as_of: date, since: date | None = None) -> ir.Table:
    """Lines that sold a known product (amount > 0), dated after `since` and up to `as_of`.

    Return lines (negative amounts) are left out: a recommender learns what was bought, and a
    later return does not make the purchase unseen.
    """
    o = upto(orders, "ordered_at", as_of)
    if since is not None:
        o = o.filter(o.ordered_at >= end_of(since))
    return o.filter((o.amount > 0) & o.product_id.notnull())


def customer_products(
    orders: ir.Table, /, *, as_of: date, half_life_days: float, since: date | None = None
) -> ir.Table:
    """One row per (customer, product): distinct orders, days since the last one, and the
    recency-decayed weight Σ over those orders of 2^(−age_days / half_life_days)."""
    if not half_life_days > 0:
        raise ValueError(f"half_life_days must be positive, got {half_life_days!r}")
    s = sold_lines(orders, as_of=as_of, since=since)
    per_order = s.group_by([KEY, "product_id", "order_id"]).agg(day=s.ordered_at.min().date())
    age = days_between(ibis.date(as_of), per_order.day)
    per_order = per_order.mutate(
        age=age, weight=(age.cast("float64") * (-math.log(2) / half_life_days)).exp()
    )
    return per_order.group_by([KEY, "product_id"]).agg(
        orders=per_order.count(),
        last_days=per_order.age.min(),
        weight=per_order.weight.sum(),
    )


def _basket_keys(basket: Basket) -> list[str]:
    """Order ids need not be unique across customers, so an order basket is (customer, order)."""
    return [KEY, "order_id"] if basket == "order" else [KEY]


def basket_items(
    orders: ir.Table,
    /,
    *,
    as_of: date,
    basket: Basket = "order",
    since: date | None = None,
    max_items: int | None = None,
) -> ir.Table:
    """Distinct (basket keys…, product_id); with `max_items`, a basket keeps its most recently
    bought items only (ties by product id), which bounds its pairs at max_items choose 2."""
    keys = _basket_keys(basket)
    s = sold_lines(orders, as_of=as_of, since=since)
    items = s.group_by([*keys, "product_id"]).agg(last_at=s.ordered_at.max())
    if max_items is not None:
        w = ibis.window(
            group_by=[items[k] for k in keys],
            order_by=[ibis.desc(items.last_at), items.product_id],
        )
        items = items.mutate(_rank=ibis.row_number().over(w))
        items = items.filter(items._rank < max_items)
    return items.select(*keys, "product_id")


def pair_counts(items: ir.Table, /) -> ir.Table:
    """(product_a, product_b, baskets) with product_a < product_b: baskets holding both.

    `items` are distinct (basket keys…, product_id) rows, as `basket_items` returns.
    """
    keys = [c for c in items.columns if c != "product_id"]
    left = items.select(*keys, product_a=items.product_id)
    right = items.select(**{f"_{k}": items[k] for k in keys}, product_b=items.product_id)
    joined = left.join(
        right,
        [left[k] == right[f"_{k}"] for k in keys] + [left.product_a < right.product_b],
    )
    return joined.group_by(["product_a", "product_b"]).agg(baskets=joined.count())


def item_baskets(items: ir.Table, /) -> ir.Table:
    """product_id, baskets: how many baskets hold each product."""
    return items.group_by("product_id").agg(baskets=items.count())


def _basket_total(items: ir.Table) -> ir.Table:
    keys = [c for c in items.columns if c != "product_id"]
    distinct = items.select(*keys).distinct()
    return distinct.aggregate(total_baskets=distinct.count())


def association_rules(
    orders: ir.Table,
    /,
    *,
    as_of: date,
    since: date | None = None,
    min_baskets: int = 2,
    min_confidence: float = 0.0,
    max_items: int | None = None,
) -> ir.Table:
    """Rules antecedent → consequent over order baskets, in both directions of every pair seen
    in at least `min_baskets` orders:

    support = n(A∧B) / N, confidence = n(A∧B) / n(A), lift = confidence / (n(B) / N),
    N = orders holding at least one sold product.
    """
    items = basket_items(orders, as_of=as_of, basket="order", since=since, max_items=max_items)
    pairs = pair_counts(items)
    pairs = pairs.filter(pairs.baskets >= min_baskets)
    rules = ibis.union(
        pairs.select(antecedent=pairs.product_a, consequent=pairs.product_b, baskets=pairs.baskets),
        pairs.select(antecedent=pairs.product_b, consequent=pairs.product_a, baskets=pairs.baskets),
    )
    counts = item_baskets(items)
    ante = counts.select(_a=counts.product_id, antecedent_baskets=counts.baskets)
    cons = counts.select(_c=counts.product_id, consequent_baskets=counts.baskets)
    r = rules.join(ante, rules.antecedent == ante._a).join(cons, rules.consequent == cons._c)
    r = r.cross_join(_basket_total(items))
    n_ab = r.baskets.cast("float64")
    total = r.total_baskets.cast("float64")
    out = r.select(
        "antecedent",
        "consequent",
        baskets=r.baskets.cast("int64"),
        antecedent_baskets=r.antecedent_baskets.cast("int64"),
        consequent_baskets=r.consequent_baskets.cast("int64"),
        support=n_ab / total,
        confidence=n_ab / r.antecedent_baskets.cast("float64"),
        lift=n_ab * total / (r.antecedent_baskets.cast("float64") * r.consequent_baskets),
    )
    return out.filter(out.confidence >= min_confidence) if min_confidence > 0 else out


def item_neighbours(
    orders: ir.Table,
    /,
    *,
    as_of: date,
    k: int,
    basket: Basket = "customer",
    since: date | None = None,
    max_items: int | None = 50,
) -> ir.Table:
    """The `k` products most often bought together with each product: product_id, neighbour_id,
    baskets, similarity = n(A∧B) / √(n(A)·n(B)) (cosine of the binary basket vectors)."""
    items = basket_items(orders, as_of=as_of, basket=basket, since=since, max_items=max_items)
    pairs = pair_counts(items)
    both = ibis.union(
        pairs.select(product_id=pairs.product_a, neighbour_id=pairs.product_b, n=pairs.baskets),
        pairs.select(product_id=pairs.product_b, neighbour_id=pairs.product_a, n=pairs.baskets),
    )
    counts = item_baskets(items)
    a = counts.select(_a=counts.product_id, n_a=counts.baskets)
    b = counts.select(_b=counts.product_id, n_b=counts.baskets)
    t = both.join(a, both.product_id == a._a).join(b, both.neighbour_id == b._b)
    t = t.select(
        "product_id",
        "neighbour_id",
        baskets=t.n.cast("int64"),
        similarity=t.n.cast("float64") / (t.n_a.cast("float64") * t.n_b.cast("float64")).sqrt(),
    )
    w = ibis.window(group_by=t.product_id, order_by=[ibis.desc(t.similarity), t.neighbour_id])
    t = t.mutate(_rank=ibis.row_number().over(w))
    return t.filter(t._rank < k).drop("_rank")


def product_catalogue(orders: ir.Table, /, products: ir.Table | None = None) -> ir.Table:
    """product_id, name, category of every product sold or listed: the catalogue's latest row
    where there is one, else the category the order lines give (any one of them)."""
    o = orders.filter(orders.product_id.notnull())
    sold = o.group_by("product_id").agg(_cat=o.category.max())
    if products is None:
        return sold.select("product_id", name=ibis.null("string"), category=sold._cat)
    listed = latest(products, "product_id").select("product_id", "name", "category")
    listed = listed.rename(_pid="product_id")
    both = sold.outer_join(listed, sold.product_id == listed._pid)
    return both.select(
        product_id=ibis.coalesce(both._pid, both.product_id),
        name=both.name,
        category=ibis.coalesce(both.category, both._cat),
    )


# -- per-segment views -------------------------------------------------------------------------


def _in_segments(table: ir.Table, segments: ir.Table | None) -> ir.Table:
    """`table` with a `segment` column: the customer's segment, or "all" without `segments`."""
    if segments is None:
        return table.mutate(segment=ibis.literal("all"))
    s = segments.select(_sid=segments[KEY], segment=segments[SEGMENT].cast("string"))
    t = table.view()  # `table` may itself be a join; a view starts a new one
    return t.join(s, t[KEY] == s._sid).drop("_sid")


def _orders_of(lines: ir.Table) -> ir.Table:
    """One row per (customer, order): placed when its first line is, on its first line's
    channel, with its net amount."""
    return lines.group_by([KEY, "order_id"]).agg(
        ordered_at=lines.ordered_at.min(),
        channel=lines.channel.argmin(lines.ordered_at),
        amount=lines.amount.sum(),
    )


def weekday_hour(
    orders: ir.Table,
    /,
    segments: ir.Table | None = None,
    *,
    as_of: date,
    since: date | None = None,
) -> ir.Table:
    """segment, weekday (0 = Monday), hour, orders, customers: the time-habit heatmap."""
    o = upto(orders, "ordered_at", as_of)
    if since is not None:
        o = o.filter(o.ordered_at >= end_of(since))
    per_order = _in_segments(_orders_of(o), segments)
    per_order = per_order.mutate(
        weekday=per_order.ordered_at.day_of_week.index().cast("int64"),
        hour=per_order.ordered_at.hour().cast("int64"),
    )
    return per_order.group_by([SEGMENT, "weekday", "hour"]).agg(
        orders=per_order.count(), customers=per_order[KEY].nunique()
    )


def preferences(
    orders: ir.Table,
    /,
    segments: ir.Table | None = None,
    *,
    column: Literal["category", "channel", "product_id"],
    as_of: date,
    since: date | None = None,
) -> ir.Table:
    """segment, value, customers, orders, revenue, order_share: how each segment buys by
    category, channel or product (order_share = orders with the value / the segment's orders)."""
    s = _in_segments(sold_lines(orders, as_of=as_of, since=since), segments)
    s = s.mutate(value=s[column].fill_null("(none)"))
    per_order = s.group_by([SEGMENT, "value", KEY, "order_id"]).agg(revenue=s.amount.sum())
    g = per_order.group_by([SEGMENT, "value"]).agg(
        customers=per_order[KEY].nunique(),
        orders=per_order.count(),
        revenue=per_order.revenue.sum(),
    )
    placed = s.select(SEGMENT, KEY, "order_id").distinct()
    totals = placed.group_by(SEGMENT).agg(_orders=placed.count()).rename(_segment=SEGMENT)
    g = g.join(totals, g[SEGMENT] == totals._segment)
    return g.select(
        SEGMENT,
        "value",
        customers=g.customers.cast("int64"),
        orders=g.orders.cast("int64"),
        revenue=g.revenue.cast("float64"),
        order_share=g.orders.cast("float64") / g._orders.cast("float64"),
    )


def top_products(
    orders: ir.Table,
    /,
    segments: ir.Table | None = None,
    *,
    as_of: date,
    n: int,
    since: date | None = None,
) -> ir.Table:
    """The `n` products bought by most customers of each segment (ties: more orders, then
    product id): segment, product_id, customers, orders, revenue, order_share, rank (1 = top)."""
    p = preferences(orders, segments, column="product_id", as_of=as_of, since=since)
    w = ibis.window(
        group_by=p[SEGMENT],
        order_by=[ibis.desc(p.customers), ibis.desc(p.orders), p.value],
    )
    p = p.mutate(rank=(ibis.row_number().over(w) + 1).cast("int64"))
    p = p.filter(p.rank <= n)
    return p.select(SEGMENT, "customers", "orders", "revenue", "order_share", "rank",
                    product_id=p.value)  # fmt: skip


def funnel(
    events: ir.Table,
    orders: ir.Table,
    /,
    segments: ir.Table | None = None,
    *,
    as_of: date,
    since: date,
) -> ir.Table:
    """Browse-to-buy per segment over (since, as_of]: viewers (customers with a view), carters
    (viewers who also carted), buyers (carters who also ordered), and the raw counts of views,
    carts and orders of the segment's customers in the window."""
    e = upto(events, "occurred_at", as_of)
    e = e.filter(e.occurred_at >= end_of(since))
    per_customer = e.group_by(KEY).agg(
        views=(e.event_type == "view").ifelse(1, 0).sum(),
        carts=(e.event_type == "cart").ifelse(1, 0).sum(),
    )
    o = upto(orders, "ordered_at", as_of)
    o = o.filter(o.ordered_at >= end_of(since))
    bought = o.group_by(KEY).agg(orders=o.order_id.nunique())
    bought = bought.rename(_bid=KEY)
    both = per_customer.outer_join(bought, per_customer[KEY] == bought._bid)
    both = both.select(
        **{KEY: ibis.coalesce(both[KEY], both._bid)},
        views=ibis.coalesce(both.views, 0),
        carts=ibis.coalesce(both.carts, 0),
        orders=ibis.coalesce(both.orders, 0),
    )
    t = _in_segments(both, segments)
    viewed = t.views > 0
    carted = viewed & (t.carts > 0)
    return t.group_by(SEGMENT).agg(
        viewers=viewed.ifelse(1, 0).sum().cast("int64"),
        carters=carted.ifelse(1, 0).sum().cast("int64"),
        buyers=(carted & (t.orders > 0)).ifelse(1, 0).sum().cast("int64"),
        ordering_customers=(t.orders > 0).ifelse(1, 0).sum().cast("int64"),
        views=t.views.sum().cast("int64"),
        carts=t.carts.sum().cast("int64"),
        orders=t.orders.sum().cast("int64"),
    )


# -- behaviour features ------------------------------------------------------------------------

FEATURES = (
    "orders", "avg_order_value", "recency_days", "tenure_days", "basket_size", "categories",
    "top_category_share", "discount_share", "return_share", "weekend_share",
    *(f"{band}_share" for band in HOUR_BANDS), "main_channel_share", "views", "carts",
)  # fmt: skip
"""Columns of `behaviour_features` besides customer_id, in order."""


def _share(condition: ir.BooleanValue) -> ir.FloatingScalar:
    """Share of rows meeting `condition` (a mean of integers is a double on every backend)."""
    return condition.ifelse(1, 0).mean()


def behaviour_features(
    orders: ir.Table, /, events: ir.Table | None = None, *, as_of: date
) -> ir.Table:
    """How each customer with orders up to `as_of` buys: value, rhythm, basket, breadth,
    discounts, returns, weekday and hour habits, channel loyalty, browsing (FEATURES)."""
    lines = upto(orders, "ordered_at", as_of)
    per_order = lines.group_by([KEY, "order_id"]).agg(
        ordered_at=lines.ordered_at.min(),
        channel=lines.channel.argmin(lines.ordered_at),
        amount=lines.amount.sum(),
        products=(lines.amount > 0).ifelse(lines.product_id, ibis.null("string")).nunique(),
    )
    dow = per_order.ordered_at.day_of_week.index()
    hour = per_order.ordered_at.hour()
    end = ibis.date(as_of)
    base = per_order.group_by(KEY).agg(
        orders=per_order.count(),
        revenue=per_order.amount.sum(),
        recency_days=days_between(end, per_order.ordered_at.max().date()),
        tenure_days=days_between(end, per_order.ordered_at.min().date()),
        basket_size=per_order.products.mean(),
        weekend_share=_share(dow >= 5),
        **{f"{b}_share": _share(hour.between(lo, hi)) for b, (lo, hi) in HOUR_BANDS.items()},
    )
    by_channel = per_order.group_by([KEY, per_order.channel.fill_null("(none)").name("ch")]).agg(
        n=per_order.count()
    )
    channel = by_channel.group_by(KEY).agg(_ch_max=by_channel.n.max(), _ch_total=by_channel.n.sum())
    channel = channel.rename(_cid=KEY)
    line_facts = lines.group_by(KEY).agg(
        discount_share=_share(lines.discount.fill_null(0) > 0),
        return_share=_share(lines.amount < 0),
    )
    line_facts = line_facts.rename(_lid=KEY)
    sold = sold_lines(orders, as_of=as_of)
    by_cat = sold.group_by([KEY, sold.category.fill_null("(none)").name("cat")]).agg(
        n=sold.order_id.nunique()
    )
    cats = by_cat.group_by(KEY).agg(categories=by_cat.count(), _cat_max=by_cat.n.max())
    cats = cats.rename(_kid=KEY)
    t = base.left_join(channel, base[KEY] == channel._cid)
    t = t.left_join(line_facts, t[KEY] == line_facts._lid)
    t = t.left_join(cats, t[KEY] == cats._kid)
    if events is not None:
        e = upto(events, "occurred_at", as_of)
        ev = e.group_by(KEY).agg(
            views=(e.event_type == "view").ifelse(1, 0).sum(),
            carts=(e.event_type == "cart").ifelse(1, 0).sum(),
        )
        ev = ev.rename(_eid=KEY)
        t = t.left_join(ev, t[KEY] == ev._eid)
        views, carts = ibis.coalesce(t.views, 0), ibis.coalesce(t.carts, 0)
    else:
        views = carts = ibis.literal(0)
    return t.select(
        KEY,
        orders=t.orders.cast("int64"),
        avg_order_value=t.revenue.cast("float64") / t.orders.cast("float64"),
        recency_days=t.recency_days,
        tenure_days=t.tenure_days,
        basket_size=ibis.coalesce(t.basket_size, 0.0).cast("float64"),
        categories=ibis.coalesce(t.categories, 0).cast("int64"),
        top_category_share=ibis.coalesce(
            t._cat_max.cast("float64") / t.orders.cast("float64"), 0.0
        ),
        discount_share=t.discount_share.cast("float64"),
        return_share=t.return_share.cast("float64"),
        weekend_share=t.weekend_share.cast("float64"),
        **{f"{b}_share": t[f"{b}_share"].cast("float64") for b in HOUR_BANDS},
        main_channel_share=t._ch_max.cast("float64") / t._ch_total.cast("float64"),
        views=views.cast("int64"),
        carts=carts.cast("int64"),
    )
