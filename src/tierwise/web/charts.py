"""Plotly figures of the dashboard and the report, as plain dicts ({"data", "layout"}).

Figures are built here from the dashboard's data and rendered in the browser by plotly.js from a
JSON data block, so pages carry no inline script. Text goes through the page's gettext `_` and
vocabulary labels through `Formatter.label`, so a chart speaks the page's language.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any
from urllib.parse import urlencode

from tierwise.core.vocab import BY_COLUMN, Stage
from tierwise.services.dashboard import (
    Bucket,
    ChurnScorer,
    CohortTable,
    Histogram,
    MigrationTable,
    MonthPoint,
    ParetoPoint,
    RfCell,
    StagePoint,
)
from tierwise.web.i18n import Formatter

Figure = dict[str, Any]
Gettext = Callable[..., str]

BLUE, AMBER, GREEN, RED, GREY, INK = (
    "#2563eb",
    "#d97706",
    "#16a34a",
    "#dc2626",
    "#94a3b8",
    "#1e293b",
)
BAND_COLOURS = {
    "A": "rgba(37,99,235,0.10)",
    "B": "rgba(217,119,6,0.10)",
    "C": "rgba(148,163,184,0.14)",
}
STAGE_COLOURS = {
    Stage.POTENTIAL: "#cbd5e1",
    Stage.NEW: "#60a5fa",
    Stage.ACTIVE: "#2563eb",
    Stage.LOYAL: "#16a34a",
    Stage.DORMANT: "#f59e0b",
    Stage.CHURNED: "#dc2626",
    Stage.REACTIVATED: "#8b5cf6",
}
BLUES = [[0, "#eff6ff"], [0.5, "#60a5fa"], [1, "#1e3a8a"]]


def _layout(height: int = 320, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "height": height,
        "margin": {"l": 56, "r": 16, "t": 16, "b": 48},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {
            "family": "system-ui, -apple-system, 'Segoe UI', 'PingFang SC', "
            "'Noto Sans CJK SC', 'Microsoft YaHei', sans-serif",
            "size": 12,
            "color": INK,
        },
        "hoverlabel": {"bgcolor": "white"},
        "legend": {"orientation": "h", "y": -0.18},
        "xaxis": {"gridcolor": "#e2e8f0", "zeroline": False},
        "yaxis": {"gridcolor": "#e2e8f0", "zeroline": False},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(layout.get(key), dict):
            layout[key] = layout[key] | value
        else:
            layout[key] = value
    return layout


def pareto(points: Sequence[ParetoPoint], abc: Sequence[Bucket], _: Gettext) -> Figure:
    """Cumulative revenue share over the share of buyers, with the A/B/C bands shaded."""
    buyers = sum(b.customers for b in abc)
    shapes, annotations, start = [], [], 0.0
    for bucket in abc:
        end = start + (bucket.customers / buyers if buyers else 0.0)
        key = bucket.key or ""
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": 100 * start,
                "x1": 100 * end,
                "y0": 0,
                "y1": 1,
                "line": {"width": 0},
                "fillcolor": BAND_COLOURS.get(key, BAND_COLOURS["C"]),
                "layer": "below",
            }
        )
        annotations.append(
            {
                "x": 100 * (start + end) / 2,
                "y": 1,
                "xref": "x",
                "yref": "paper",
                "yanchor": "bottom",
                "showarrow": False,
                "text": f"<b>{key}</b>",
            }
        )
        start = end
    trace = {
        "type": "scatter",
        "mode": "lines",
        "x": [100 * p.customer_share for p in points],
        "y": [100 * p.revenue_share for p in points],
        "line": {"color": BLUE, "width": 3},
        "name": _("Cumulative revenue"),
        "hovertemplate": _("%{x:.0f}% of buyers bring %{y:.1f}% of revenue") + "<extra></extra>",
    }
    return {
        "data": [trace],
        "layout": _layout(
            shapes=shapes,
            annotations=annotations,
            showlegend=False,
            margin={"t": 28},
            xaxis={"title": {"text": _("Share of buyers, by revenue (%)")}, "range": [0, 100]},
            yaxis={"title": {"text": _("Share of revenue (%)")}, "range": [0, 102]},
        ),
    }


def share_bars(buckets: Sequence[Bucket], column: str, fmt: Formatter, _: Gettext) -> Figure:
    """Share of customers next to share of revenue per class: who is many, who pays."""
    rows = [b for b in buckets if b.customers]
    labels = [fmt.label(column, b.key) if b.key else _("No orders") for b in rows]
    traces = [
        {
            "type": "bar",
            "orientation": "h",
            "y": labels,
            "x": [100 * b.share for b in rows],
            "name": _("Customers"),
            "marker": {"color": GREY},
            "hovertemplate": "%{y}: %{x:.1f}%<extra></extra>",
        },
        {
            "type": "bar",
            "orientation": "h",
            "y": labels,
            "x": [100 * (b.revenue_share or 0) for b in rows],
            "name": _("Revenue"),
            "marker": {"color": BLUE},
            "hovertemplate": "%{y}: %{x:.1f}%<extra></extra>",
        },
    ]
    return {
        "data": traces,
        "layout": _layout(
            height=max(240, 34 * len(rows) + 90),
            barmode="group",
            margin={"l": 150},
            xaxis={"title": {"text": _("Share (%)")}, "ticksuffix": "%"},
            yaxis={"autorange": "reversed", "automargin": True},
        ),
    }


def funnel(stages: Sequence[Bucket], fmt: Formatter, _: Gettext) -> Figure:
    rows = [b for b in stages if b.key]
    return {
        "data": [
            {
                "type": "funnel",
                "y": [fmt.label("lifecycle_stage", b.key) for b in rows],
                "x": [b.customers for b in rows],
                "textinfo": "value+percent total",
                "marker": {"color": [STAGE_COLOURS.get(Stage(b.key), GREY) for b in rows if b.key]},
                "hovertemplate": "%{y}: %{x:,}<extra></extra>",
                "connector": {"fillcolor": "#e2e8f0", "line": {"width": 0}},
            }
        ],
        "layout": _layout(margin={"l": 90}, yaxis={"automargin": True}),
    }


def rf_heatmap(cells: Sequence[RfCell], fmt: Formatter, _: Gettext) -> Figure:
    """Customers per R×F cell, coloured by the cell's revenue; a click opens the cell's list."""
    by = {(c.r, c.f): c for c in cells}
    z, text, links = [], [], []
    for r in range(1, 6):
        z_row, text_row, link_row = [], [], []
        for f in range(1, 6):
            cell = by.get((r, f))
            z_row.append(cell.revenue if cell else None)
            name = fmt.label("rfm_segment", cell.segment) if cell and cell.segment else ""
            text_row.append(f"{name}<br>{fmt.number(cell.customers)}" if cell else "")
            query = {"r": r, "f": f} | ({"segment": cell.segment} if cell and cell.segment else {})
            link_row.append(["/customers?" + urlencode(query), name] if cell else ["", ""])
        z.append(z_row)
        text.append(text_row)
        links.append(link_row)
    trace = {
        "type": "heatmap",
        "x": [f"F{f}" for f in range(1, 6)],
        "y": [f"R{r}" for r in range(1, 6)],
        "z": z,
        "text": text,
        "customdata": links,
        "texttemplate": "%{text}",
        "colorscale": BLUES,
        "colorbar": {"title": {"text": _("Revenue")}},
        "hovertemplate": "%{y} %{x} · %{customdata[1]}<br>"
        + _("Revenue")
        + ": %{z:,.0f}<extra></extra>",
        "xgap": 2,
        "ygap": 2,
    }
    return {
        "data": [trace],
        "layout": _layout(
            height=420,
            xaxis={"title": {"text": _("Frequency score (F)")}, "side": "bottom"},
            yaxis={"title": {"text": _("Recency score (R)")}},
        ),
        "clickable": True,
    }


def migration_heatmap(table: MigrationTable, fmt: Formatter, _: Gettext) -> Figure:
    froms = _ordered_values(table.dimension, {r.from_value for r in table.rows})
    tos = _ordered_values(table.dimension, {r.to_value for r in table.rows})
    counts = {(r.from_value, r.to_value): r.customers for r in table.rows}
    z = [[counts.get((a, b)) for b in tos] for a in froms]
    return {
        "data": [
            {
                "type": "heatmap",
                "x": [_value_label(table.dimension, v, fmt, _) for v in tos],
                "y": [_value_label(table.dimension, v, fmt, _) for v in froms],
                "z": z,
                "texttemplate": "%{z:,}",
                "colorscale": BLUES,
                "colorbar": {"title": {"text": _("Customers")}},
                "hovertemplate": "%{y} → %{x}: %{z:,}<extra></extra>",
                "xgap": 2,
                "ygap": 2,
            }
        ],
        "layout": _layout(
            height=max(320, 40 * len(froms) + 120),
            margin={"l": 120, "b": 90},
            xaxis={"title": {"text": _("This run")}, "automargin": True},
            yaxis={
                "title": {"text": _("Previous run")},
                "autorange": "reversed",
                "automargin": True,
            },
        ),
    }


def migration_sankey(table: MigrationTable, fmt: Formatter, _: Gettext) -> Figure:
    froms = _ordered_values(table.dimension, {r.from_value for r in table.rows})
    tos = _ordered_values(table.dimension, {r.to_value for r in table.rows})
    labels = [_value_label(table.dimension, v, fmt, _) for v in froms + tos]
    colours = [_value_colour(table.dimension, v) for v in froms + tos]
    rows = [r for r in table.rows if r.customers]
    return {
        "data": [
            {
                "type": "sankey",
                "arrangement": "snap",
                "node": {"label": labels, "color": colours, "pad": 12, "thickness": 14},
                "link": {
                    "source": [froms.index(r.from_value) for r in rows],
                    "target": [len(froms) + tos.index(r.to_value) for r in rows],
                    "value": [r.customers for r in rows],
                    "color": "rgba(148,163,184,0.35)",
                },
            }
        ],
        "layout": _layout(
            height=max(360, 30 * max(len(froms), len(tos)) + 80),
            margin={"l": 8, "r": 8, "t": 8, "b": 8},
        ),
    }


def cohort_heatmap(table: CohortTable, _: Gettext, *, months: int = 24) -> Figure:
    """Retention of the last `months` first-order cohorts over their first `months` months."""
    cohorts = sorted({r.cohort_month for r in table.rows})[-months:]
    offsets = list(range(months + 1))
    cell = {(r.cohort_month, r.month_offset): r for r in table.rows}
    z = [
        [
            100 * c.retention if (c := cell.get((m, o))) and c.retention is not None else None
            for o in offsets
        ]
        for m in cohorts
    ]
    sizes = [
        next((cell[(m, o)].cohort_size for o in offsets if (m, o) in cell), 0) for m in cohorts
    ]
    return {
        "data": [
            {
                "type": "heatmap",
                "x": offsets,
                "y": [m.strftime("%Y-%m") for m in cohorts],
                "z": z,
                "customdata": [[s] * len(offsets) for s in sizes],
                "colorscale": BLUES,
                "zmin": 0,
                "colorbar": {"title": {"text": "%"}},
                "hovertemplate": _(
                    "Cohort %{y} (%{customdata:,} customers), month %{x}: %{z:.1f}% ordered"
                )
                + "<extra></extra>",
                "xgap": 1,
                "ygap": 1,
            }
        ],
        "layout": _layout(
            height=max(320, 18 * len(cohorts) + 110),
            xaxis={"title": {"text": _("Months since first order")}, "dtick": 3},
            yaxis={
                "title": {"text": _("First-order month")},
                "autorange": "reversed",
                "type": "category",
                "automargin": True,
            },
        ),
    }


def stage_history(points: Sequence[StagePoint], fmt: Formatter, _: Gettext) -> Figure:
    x = [f"{p.as_of.isoformat()}<br>{p.run_id[-6:]}" for p in points]
    traces = [
        {
            "type": "bar",
            "name": fmt.label("lifecycle_stage", stage.value),
            "x": x,
            "y": [p.stages.get(stage.value, 0) for p in points],
            "marker": {"color": STAGE_COLOURS[stage]},
            "hovertemplate": "%{fullData.name}: %{y:,}<extra></extra>",
        }
        for stage in Stage
    ]
    return {
        "data": traces,
        "layout": _layout(
            barmode="stack", yaxis={"title": {"text": _("Customers")}}, xaxis={"type": "category"}
        ),
    }


def histogram(hist: Histogram, title: str, _: Gettext, *, losses_red: bool = False) -> Figure:
    edges = hist.edges
    centres = [(a + b) / 2 for a, b in pairwise(edges)]
    widths = [b - a for a, b in pairwise(edges)]
    colours = [RED if losses_red and c < 0 else BLUE for c in centres]
    return {
        "data": [
            {
                "type": "bar",
                "x": centres,
                "y": hist.counts,
                "width": widths,
                "marker": {"color": colours, "line": {"color": "white", "width": 1}},
                "customdata": [[a, b] for a, b in pairwise(edges)],
                "hovertemplate": "%{customdata[0]:,.0f} – %{customdata[1]:,.0f}: %{y:,}"
                "<extra></extra>",
            }
        ],
        "layout": _layout(
            bargap=0,
            xaxis={"title": {"text": title}},
            yaxis={"title": {"text": _("Customers")}},
        ),
    }


def churn_scorers(scorers: Sequence[ChurnScorer], _: Gettext) -> Figure:
    """Validation of the churn model against its baselines: ranking quality and calibration."""
    names = [s.name for s in scorers]
    metrics = (
        ("ROC-AUC", [s.roc_auc for s in scorers], BLUE, "y"),
        ("PR-AUC", [s.pr_auc for s in scorers], GREY, "y"),
        (_("Calibration error (ECE)"), [s.ece for s in scorers], RED, "y2"),
    )
    traces = [
        {
            "type": "bar",
            "name": name,
            "x": names,
            "y": values,
            "marker": {"color": colour},
            "yaxis": axis,
            "offsetgroup": str(i),
            "hovertemplate": "%{x}: %{y:.3f}<extra>" + name + "</extra>",
        }
        for i, (name, values, colour, axis) in enumerate(metrics)
    ]
    return {
        "data": traces,
        "layout": _layout(
            barmode="group",
            yaxis={"title": {"text": _("Higher is better")}, "range": [0, 1]},
            yaxis2={
                "title": {"text": _("ECE, lower is better")},
                "tickformat": ".3f",
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
                "showgrid": False,
            },
            margin={"r": 64},
        ),
    }


def order_history(months: Sequence[MonthPoint], _: Gettext) -> Figure:
    x = [m.month.strftime("%Y-%m") for m in months]
    return {
        "data": [
            {
                "type": "bar",
                "x": x,
                "y": [m.revenue for m in months],
                "name": _("Revenue"),
                "marker": {"color": BLUE},
                "hovertemplate": "%{x}: %{y:,.2f}<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": x,
                "y": [m.orders for m in months],
                "name": _("Orders"),
                "yaxis": "y2",
                "line": {"color": AMBER},
                "hovertemplate": "%{x}: %{y}<extra></extra>",
            },
        ],
        "layout": _layout(
            height=280,
            xaxis={"type": "category"},
            yaxis={"title": {"text": _("Revenue")}},
            yaxis2={
                "title": {"text": _("Orders")},
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
                "showgrid": False,
                "dtick": 1,
            },
            margin={"r": 48},
        ),
    }


def _ordered_values(dimension: str, values: set[str]) -> list[str]:
    """Vocabulary order, "(none)" last, so rows and columns read in the same order."""
    vocab = BY_COLUMN.get(dimension)
    rank = {m.value: i for i, m in enumerate(vocab)} if vocab else {}
    return sorted(values, key=lambda v: (v == "(none)", rank.get(v, len(rank)), v))


def _value_label(dimension: str, value: str, fmt: Formatter, _: Gettext) -> str:
    return _("None (no orders)") if value == "(none)" else fmt.label(dimension, value)


def _value_colour(dimension: str, value: str) -> str:
    if dimension == "lifecycle_stage" and value in {s.value for s in Stage}:
        return STAGE_COLOURS[Stage(value)]
    return GREY if value == "(none)" else BLUE
