"""Service levels of complaint tickets, and what an unresolved complaint does to churn risk.
Pure Python, no I/O.

A deadline is met when the thing happened at or before it; a ticket still waiting is `pending`
until its deadline passes and `overdue` after. Deadlines are fixed when a ticket opens, so
changing the configuration later does not rewrite history.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class SlaState(StrEnum):
    MET = "met"
    BREACHED = "breached"
    PENDING = "pending"
    OVERDUE = "overdue"


def deadlines(
    opened_at: datetime, first_response_hours: float, resolution_hours: float
) -> tuple[datetime, datetime]:
    """(first response due, resolution due) of a ticket opened at `opened_at`."""
    if not 0 < first_response_hours <= resolution_hours:
        raise ValueError("need 0 < first response hours <= resolution hours")
    return (
        opened_at + timedelta(hours=first_response_hours),
        opened_at + timedelta(hours=resolution_hours),
    )


def sla_state(due: datetime, done_at: datetime | None, now: datetime) -> SlaState:
    if done_at is not None:
        return SlaState.MET if done_at <= due else SlaState.BREACHED
    return SlaState.OVERDUE if now > due else SlaState.PENDING


@dataclass(frozen=True)
class Ticket:
    """The times an SLA summary needs of one complaint."""

    first_response_due_at: datetime
    first_response_at: datetime | None
    resolution_due_at: datetime
    resolved_at: datetime | None


@dataclass
class SlaCounts:
    met: int = 0
    breached: int = 0
    pending: int = 0
    overdue: int = 0

    @property
    def met_rate(self) -> float | None:
        """Share of decided tickets (done, or past due) that met the deadline."""
        decided = self.met + self.breached + self.overdue
        return self.met / decided if decided else None


@dataclass
class SlaSummary:
    tickets: int = 0
    first_response: SlaCounts = field(default_factory=SlaCounts)
    resolution: SlaCounts = field(default_factory=SlaCounts)


def summarize(tickets: Iterable[Ticket], now: datetime) -> SlaSummary:
    first: Counter[SlaState] = Counter()
    resolution: Counter[SlaState] = Counter()
    n = 0
    for t in tickets:
        n += 1
        first[sla_state(t.first_response_due_at, t.first_response_at, now)] += 1
        resolution[sla_state(t.resolution_due_at, t.resolved_at, now)] += 1

    def counts(c: Counter[SlaState]) -> SlaCounts:
        return SlaCounts(
            c[SlaState.MET], c[SlaState.BREACHED], c[SlaState.PENDING], c[SlaState.OVERDUE]
        )

    return SlaSummary(n, counts(first), counts(resolution))


RISK_ORDER = ("low", "medium", "high")


def raised_churn_risk(risk: str | None) -> str:
    """One level up for a customer with an unresolved complaint (unknown risk becomes medium);
    high stays high."""
    if risk not in RISK_ORDER:
        return "medium"
    return RISK_ORDER[min(RISK_ORDER.index(risk) + 1, len(RISK_ORDER) - 1)]
