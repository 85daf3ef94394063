"""Canonical warehouse tables (DESIGN.md "Canonical data"): column names, kinds, required flags.

Ingestion parses every source into these columns; the engine reads them by these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["id", "text", "timestamp", "number", "bool"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = False
    pii: bool = False


@dataclass(frozen=True)
class TableContract:
    name: str
    columns: tuple[Column, ...]
    time_column: str | None
    """Rows whose time column lies after the load date are rejected as `future_date`."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _t(name: str, time_column: str | None, *cols: Column) -> TableContract:
    return TableContract(name, cols, time_column)


C = Column
TABLES: dict[str, TableContract] = {
    t.name: t
    for t in (
        _t(
            "orders",
            "ordered_at",
            C("customer_id", "id", True),
            C("order_id", "id", True),
            C("ordered_at", "timestamp", True),
            C("amount", "number", True),
            C("quantity", "number"),
            C("product_id", "id"),
            C("category", "text"),
            C("channel", "text"),
            C("store_id", "id"),
            C("discount", "number"),
            C("cost", "number"),
        ),
        _t(
            "customers",
            "registered_at",
            C("customer_id", "id", True),
            C("registered_at", "timestamp"),
            C("name", "text", pii=True),
            C("phone", "id", pii=True),
            C("email", "text", pii=True),
            C("gender", "text"),
            C("age_band", "text"),
            C("income_band", "text"),
            C("region", "text"),
            C("city", "text"),
            C("acquisition_channel", "text"),
            C("acquisition_cost", "number"),
            C("consent_marketing", "bool"),
            C("account_manager", "id"),
        ),
        _t(
            "products",
            None,
            C("product_id", "id", True),
            C("name", "text"),
            C("category", "text"),
            C("brand", "text"),
            C("price", "number"),
        ),
        _t(
            "events",
            "occurred_at",
            C("customer_id", "id", True),
            C("occurred_at", "timestamp", True),
            C("event_type", "text", True),
            C("product_id", "id"),
            C("channel", "text"),
        ),
        _t(
            "interactions",
            "occurred_at",
            C("customer_id", "id", True),
            C("occurred_at", "timestamp", True),
            C("kind", "text", True),
            C("channel", "text"),
            C("outcome", "text"),
            C("handled_by", "id"),
            C("cost", "number"),
            C("resolved_at", "timestamp"),
        ),
        _t(
            "feedback",
            "responded_at",
            C("customer_id", "id", True),
            C("responded_at", "timestamp", True),
            C("survey", "text"),
            C("csat", "number"),
            C("nps", "number"),
            C("comment", "text"),
        ),
        _t(
            "costs",
            "incurred_at",
            C("customer_id", "id", True),
            C("incurred_at", "timestamp", True),
            C("kind", "text", True),
            C("amount", "number", True),
        ),
    )
}

ATTRIBUTES = "attributes"
"""JSON text of the source columns no mapping names: kept, never dropped."""

LINEAGE = ("_source", "_line", "_ingest_id", "_row_hash")
"""Columns ingestion adds to every canonical row: file, line, ingest id, content hash."""
