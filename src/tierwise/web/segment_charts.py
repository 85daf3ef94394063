"""Plotly figures of a segment's buying behaviour (the segment page), as plain dicts.

Kept apart from `charts` because they draw the rows `services.behaviour` returns (dicts, as the
/api/v1 twins serve them) rather than the dashboard's dataclasses; the look is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from babel.dates import get_day_names

from tierwise.web.charts import AMBER, BLUE, BLUES, GREEN, Figure, Gettext, _layout
from tierwise.web.i18n import Formatter


def weekday_hour(cells: Sequence[Mapping[str, Any]], fmt: Formatter, _: Gettext) -> Figure:
    """Orders in each hour of the week (rows Monday to Sunday, columns 0–23 h)."""
    days = get_day_names("abbreviated", locale=fmt.lang)
    orders = [[0] * 24 for _day in range(7)]
    customers = [[0] * 24 for _day in range(7)]
    for cell in cells:
        orders[cell["weekday"]][cell["hour"]] = cell["orders"]
        customers[cell["weekday"]][cell["hour"]] = cell["customers"]
    trace = {
        "type": "heatmap",
        "x": [f"{h:02d}" for h in range(24)],
        "y": [days[d] for d in range(7)],
        "z": orders,
        "customdata": customers,
        "colorscale": BLUES,
        "zmin": 0,
        "colorbar": {"title": {"text": _("Orders")}},
        "hovertemplate": _("%{y} %{x}:00 · %{z:,} orders by %{customdata:,} customers")
        + "<extra></extra>",
        "xgap": 1,
        "ygap": 1,
    }
    return {
        "data": [trace],
        "layout": _layout(
            height=300,
            xaxis={"title": {"text": _("Hour of the day")}, "type": "category"},
            yaxis={"autorange": "reversed", "type": "category", "automargin": True},
        ),
    }


def preference_bars(
    rows: Sequence[Mapping[str, Any]], name_of: Callable[[str], str], _: Gettext
) -> Figure:
    """Share of the segment's orders holding each value (a category or a channel)."""
    labels = [name_of(str(r["value"])) for r in rows]
    trace = {
        "type": "bar",
        "orientation": "h",
        "y": labels,
        "x": [100 * r["order_share"] for r in rows],
        "customdata": [[r["customers"], r["revenue"]] for r in rows],
        "marker": {"color": BLUE},
        "hovertemplate": _("%{y}: %{x:.1f}% of orders, %{customdata[0]:,} customers")
        + "<extra></extra>",
    }
    return {
        "data": [trace],
        "layout": _layout(
            height=max(200, 30 * len(rows) + 80),
            margin={"l": 110},
            xaxis={"title": {"text": _("Share of orders (%)")}, "ticksuffix": "%"},
            yaxis={"autorange": "reversed", "automargin": True},
        ),
    }


def browse_funnel(flow: Mapping[str, Any], _: Gettext) -> Figure:
    """Customers who viewed a product, of those who also carted, of those who also ordered."""
    stages = (
        (_("Viewed a product"), flow["viewers"], flow["views"], BLUE),
        (_("Added to a cart"), flow["carters"], flow["carts"], AMBER),
        (_("Ordered"), flow["buyers"], flow["orders"], GREEN),
    )
    return {
        "data": [
            {
                "type": "funnel",
                "y": [s[0] for s in stages],
                "x": [s[1] for s in stages],
                "customdata": [s[2] for s in stages],
                "textinfo": "value+percent initial",
                "marker": {"color": [s[3] for s in stages]},
                "hovertemplate": _("%{y}: %{x:,} customers (%{customdata:,} times in all)")
                + "<extra></extra>",
                "connector": {"fillcolor": "#e2e8f0", "line": {"width": 0}},
            }
        ],
        "layout": _layout(height=260, margin={"l": 110}, yaxis={"automargin": True}),
    }
