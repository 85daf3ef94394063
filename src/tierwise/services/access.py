"""Who may see which customers, and how much of each: the one `scope(viewer)` builder and masking.

Every path that reads customers (list, search, count, detail, segment aggregates, exports,
reports) starts from `scope(viewer)`, so a role's row filter is written once and cannot drift
between endpoints. Personal data is masked for every role without `pii:read`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, false, select

from tierwise.core.errors import PermissionDeniedError
from tierwise.store.audit import PII_KEY_PARTS
from tierwise.store.models import PublishedProfile, PublishedRun, Role, RunStatus, User
from tierwise.store.publish import current_profiles

PII_READ = "pii:read"
"""See names, phones and e-mails unmasked."""

ERASE = "customers:erase"
"""Erase a person everywhere (right to erasure)."""

PERMISSIONS: dict[str, frozenset[str]] = {
    Role.ADMIN.value: frozenset({PII_READ, ERASE}),
    Role.ANALYST.value: frozenset(),
    Role.MANAGER.value: frozenset(),
    Role.AGENT.value: frozenset(),
}
"""Permissions beyond reading the customers in scope; unknown roles get none."""


class Viewer(Protocol):
    """Anyone customers are shown to: a store `User` or a `Principal`."""

    @property
    def username(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def team(self) -> str | None: ...


@dataclass(frozen=True)
class Principal:
    """The signed-in user as delivery layers see it: plain values, no ORM session attached."""

    id: int
    username: str
    display_name: str
    role: str
    team: str | None

    @classmethod
    def of(cls, user: User) -> Principal:
        return cls(user.id, user.username, user.display_name, user.role, user.team)


def permissions(viewer: Viewer) -> frozenset[str]:
    return PERMISSIONS.get(viewer.role, frozenset())


def can(viewer: Viewer, permission: str) -> bool:
    return permission in permissions(viewer)


OPERATOR_ROLES = frozenset({Role.ADMIN.value, Role.ANALYST.value})
"""Roles that see every customer may also start runs and read the data-quality report."""


def require_operator(viewer: Viewer, action: str) -> None:
    """Refuse `action` to managers, agents and unknown roles (PermissionDeniedError)."""
    if viewer.role not in OPERATOR_ROLES:
        raise PermissionDeniedError(f"role {viewer.role!r} may not {action}")


def _visible(viewer: Viewer) -> ColumnElement[bool] | None:
    """The row filter of the viewer's role; None means every customer."""
    role = viewer.role
    if role in (Role.ADMIN, Role.ANALYST):
        return None
    if role == Role.MANAGER and viewer.team:
        team = select(User.username).where(User.team == viewer.team)
        return PublishedProfile.account_manager.in_(team.scalar_subquery())
    if role == Role.AGENT:
        return PublishedProfile.account_manager == viewer.username
    return false()  # a manager without a team, or a role this code does not know: nothing


def sees_everyone(viewer: Viewer) -> bool:
    """True when the viewer's role filters no customers out."""
    return _visible(viewer) is None


def scope(viewer: Viewer, *, run_id: str | None = None) -> Select[PublishedProfile]:
    """The profiles `viewer` may read: of the current run, or of `run_id` if it is published.

    Pinning `run_id` lets a request that runs several statements (a page and its total) read
    one run even if another is published in between; the previous run is kept for that.
    Agents see customers whose `account_manager` is exactly their (case-folded) username;
    managers those of every user in their team, disabled ones included (their customers still
    belong to the team). Admins and analysts see all; anyone else nothing.
    """
    if run_id is None:
        query = current_profiles()
    else:
        query = (
            select(PublishedProfile)
            .join(
                PublishedRun,
                (PublishedRun.run_id == PublishedProfile.run_id)
                & (PublishedRun.status == RunStatus.PUBLISHED.value),
            )
            .where(PublishedProfile.run_id == run_id)
        )
    condition = _visible(viewer)
    return query if condition is None else query.where(condition)


def mask_phone(value: str) -> str:
    """`13812340042` → `138****0042`; short numbers keep only their last two characters."""
    s = value.strip()
    if len(s) >= 11:
        return f"{s[:3]}****{s[-4:]}"
    return "****" + s[-2:] if len(s) > 4 else "****"


def mask_email(value: str) -> str:
    """`zhang@example.com` → `z***@example.com`: the domain alone identifies no one."""
    local, at, domain = value.strip().rpartition("@")
    if not at or not local:
        return mask_text(value)
    return f"{local[0]}***@{domain}"


def mask_name(value: str) -> str:
    """`张三` → `张*`, `欧阳娜娜` → `欧***`: the surname stays, as on Chinese receipts."""
    s = value.strip()
    return s[:1] + "*" * (len(s) - 1) if len(s) > 1 else "*"


def mask_text(value: str) -> str:
    """Any other personal value (address, ID number...): first character only."""
    s = value.strip()
    return s[:1] + "***" if s else ""


Masker = Callable[[str], str]

_PHONE = frozenset({"phone", "mobile", "tel", "telephone"})
_EMAIL = frozenset({"email", "mail"})


def _masker(key: str) -> Masker | None:
    """The mask for a field, or None when it is not personal data.

    A field is personal when any `_`/`-`-separated part of its name is one the audit log also
    refuses (name, phone, email, address, idcard...), so unmapped source columns such as
    `contact_mobile` are masked too.
    """
    lowered = key.lower()
    parts = set(re.split(r"[_\-\s.]+", lowered))
    if parts & _PHONE:
        return mask_phone
    if parts & _EMAIL:
        return mask_email
    if "name" in parts:
        return mask_name
    if parts & PII_KEY_PARTS or lowered in {"id_card", "id_number"}:
        return mask_text
    return None


def _masked(masker: Masker | None, value: Any) -> Any:
    """Mask `value` with `masker`; inside a personal field every nested value is personal too."""
    if isinstance(value, Mapping):
        return {k: _masked(_masker(str(k)) or masker, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(masker, v) for v in value]
    if masker is None or value is None or isinstance(value, bool):
        return value
    return masker(str(value))


def for_viewer(viewer: Viewer, record: Mapping[str, Any]) -> dict[str, Any]:
    """`record` as `viewer` may see it: personal fields masked, at any depth, without pii:read."""
    if can(viewer, PII_READ):
        return dict(record)
    return {k: _masked(_masker(str(k)), v) for k, v in record.items()}
