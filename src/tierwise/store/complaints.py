"""Complaint tickets and their status flow.

    open ──► responded ──► resolved ──► closed
      └──────────────────────►┘  └──► responded (reopened)

Every move stamps its time: the first response (a resolution counts as one), the resolution and
the closing. A reopened ticket loses its resolution time, so it is unresolved again for its SLA.
Imported tickets carry the warehouse row hash as `source_key`, unique, so importing the same
interactions twice adds nothing, even from two processes at once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tierwise.core.errors import ConflictError, NotFoundError
from tierwise.store.models import Complaint, ComplaintSource, ComplaintStatus

FLOW: dict[ComplaintStatus, frozenset[ComplaintStatus]] = {
    ComplaintStatus.OPEN: frozenset({ComplaintStatus.RESPONDED, ComplaintStatus.RESOLVED}),
    ComplaintStatus.RESPONDED: frozenset({ComplaintStatus.RESOLVED}),
    ComplaintStatus.RESOLVED: frozenset({ComplaintStatus.CLOSED, ComplaintStatus.RESPONDED}),
    ComplaintStatus.CLOSED: frozenset(),
}
"""Allowed moves; resolved → responded reopens a ticket."""


def open_complaint(
    session: Session,
    customer_id: str,
    *,
    category: str,
    opened_at: datetime,
    first_response_due_at: datetime,
    resolution_due_at: datetime,
    created_by: str,
    source: str = ComplaintSource.APP.value,
    source_key: str | None = None,
    channel: str | None = None,
    description: str | None = None,
    owner: str | None = None,
    first_response_at: datetime | None = None,
    resolved_at: datetime | None = None,
) -> tuple[Complaint, bool]:
    """A new ticket, or the one already imported under `source_key`; True if created.

    A ticket may arrive already resolved (imported history): its status follows its times.
    """
    if source_key is not None:
        existing = _by_key(session, source_key)
        if existing is not None:
            return existing, False
    if resolved_at is not None:
        status = ComplaintStatus.RESOLVED
        first_response_at = first_response_at or resolved_at
    else:
        status = ComplaintStatus.RESPONDED if first_response_at else ComplaintStatus.OPEN
    complaint = Complaint(
        customer_id=customer_id,
        source=ComplaintSource(source).value,
        source_key=source_key,
        category=category,
        channel=channel,
        description=description,
        owner=owner,
        status=status.value,
        opened_at=opened_at,
        first_response_due_at=first_response_due_at,
        resolution_due_at=resolution_due_at,
        first_response_at=first_response_at,
        resolved_at=resolved_at,
        created_by=created_by,
    )
    try:
        with session.begin_nested():
            session.add(complaint)
    except IntegrityError:
        winner = _by_key(session, source_key) if source_key is not None else None
        if winner is None:
            raise
        return winner, False
    return complaint, True


def _by_key(session: Session, source_key: str) -> Complaint | None:
    return session.scalar(select(Complaint).where(Complaint.source_key == source_key))


def get_complaint(session: Session, complaint_id: int, *, for_update: bool = False) -> Complaint:
    query = select(Complaint).where(Complaint.id == complaint_id)
    if for_update:  # locked and re-read, so of two concurrent moves the second sees the first
        query = query.with_for_update().execution_options(populate_existing=True)
    complaint = session.scalar(query)
    if complaint is None:
        raise NotFoundError(f"no complaint {complaint_id}")
    return complaint


def move(
    session: Session,
    complaint: Complaint,
    to: str,
    *,
    now: datetime,
    resolution: str | None = None,
) -> Complaint:
    """Move a ticket along the flow, stamping the time; ConflictError for a move not allowed."""
    target = ComplaintStatus(to)
    current = ComplaintStatus(complaint.status)
    if target not in FLOW[current]:
        raise ConflictError(f"complaint {complaint.id} is {current.value}; cannot become {to}")
    if target is ComplaintStatus.RESPONDED:
        if current is ComplaintStatus.RESOLVED:
            complaint.resolved_at = None  # reopened
        complaint.first_response_at = complaint.first_response_at or now
    elif target is ComplaintStatus.RESOLVED:
        complaint.first_response_at = complaint.first_response_at or now
        complaint.resolved_at = now
        if resolution is not None:
            complaint.resolution = resolution
    else:
        complaint.closed_at = now
    complaint.status = target.value
    session.flush()
    return complaint
