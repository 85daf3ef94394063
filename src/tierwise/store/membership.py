"""Membership levels: each customer's current level, the history of changes, and one row per
evaluation with its counts.

An evaluation is written in one transaction by the caller, so the current levels, the history
and the counts always agree; rows are written in bulk (executemany), never one ORM object each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.orm import Session

from tierwise.store.models import Membership, MembershipChange, MembershipEvaluation

_BATCH = 5_000


def current_memberships(session: Session) -> Iterator[Row[Any]]:
    """(customer_id, level, since, grace_until, value) of every member, streamed."""
    return iter(
        session.execute(
            select(
                Membership.customer_id,
                Membership.level,
                Membership.since,
                Membership.grace_until,
                Membership.value,
            ).execution_options(yield_per=_BATCH)
        )
    )


def latest_evaluation_date(session: Session) -> date | None:
    return session.scalar(
        select(MembershipEvaluation.as_of).order_by(MembershipEvaluation.as_of.desc()).limit(1)
    )


def _chunks(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), _BATCH):
        yield rows[start : start + _BATCH]


def save_evaluation(
    session: Session,
    evaluation: dict[str, Any],
    *,
    inserted: Sequence[dict[str, Any]],
    updated: Sequence[dict[str, Any]],
    changes: Sequence[dict[str, Any]],
) -> None:
    """Write an evaluation: new members, changed members (by customer_id) and history rows
    (without `evaluation_id`, which is filled in here)."""
    session.execute(insert(MembershipEvaluation), [evaluation])
    for chunk in _chunks(inserted):
        session.execute(insert(Membership), chunk)
    for chunk in _chunks(updated):
        session.execute(update(Membership), chunk)
    history = [{**c, "evaluation_id": evaluation["id"]} for c in changes]
    for chunk in _chunks(history):
        session.execute(insert(MembershipChange), chunk)
    session.flush()


def customer_history(session: Session, customer_id: str) -> list[MembershipChange]:
    """Oldest first."""
    return list(
        session.scalars(
            select(MembershipChange)
            .where(MembershipChange.customer_id == customer_id)
            .order_by(MembershipChange.changed_on, MembershipChange.id)
        )
    )


def evaluations(session: Session, *, limit: int = 100) -> list[MembershipEvaluation]:
    """Newest first."""
    return list(
        session.scalars(
            select(MembershipEvaluation)
            .order_by(MembershipEvaluation.as_of.desc(), MembershipEvaluation.evaluated_at.desc())
            .limit(limit)
        )
    )
