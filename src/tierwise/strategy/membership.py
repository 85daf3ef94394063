"""Membership levels (会员等级) from rolling spend or points: pure rules, no I/O.

- A customer holds the highest level whose `min_value` their rolling value reaches.
- Upgrades take effect at once.
- A customer below their level keeps it until a review date (MM-DD, every year) passes; then a
  grace period starts. Re-qualifying during grace keeps the level; still short when grace ends,
  the customer drops to the level their value reaches then. With `grace_days = 0` the drop
  happens at the review itself.
- Evaluations only move forward in time, so a review date is never applied twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum


class Change(StrEnum):
    JOIN = "join"
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"


@dataclass(frozen=True)
class Level:
    code: str
    name: str
    min_value: float


@dataclass(frozen=True)
class Rules:
    levels: tuple[Level, ...]
    """Ascending by `min_value`; the first has min_value 0."""
    review_dates: tuple[tuple[int, int], ...]
    """(month, day) of each yearly review."""
    grace_days: int = 0

    def __post_init__(self) -> None:
        mins = [level.min_value for level in self.levels]
        if not mins or mins[0] != 0 or mins != sorted(set(mins)):
            raise ValueError("levels need strictly increasing min_value starting at 0")
        if not self.review_dates:
            raise ValueError("at least one review date is needed")
        for month, day in self.review_dates:
            date(2001, month, day)  # raises for an impossible or leap-only date
        if self.grace_days < 0:
            raise ValueError("grace_days must not be negative")

    def qualified(self, value: float) -> Level:
        """The highest level `value` reaches (the first level for any value below the second)."""
        reached = self.levels[0]
        for level in self.levels[1:]:
            if value >= level.min_value:
                reached = level
        return reached

    def rank(self, code: str) -> int:
        """Position of a level, −1 for a code no longer configured (always below the rest)."""
        for i, level in enumerate(self.levels):
            if level.code == code:
                return i
        return -1

    def reviews_between(self, after: date, upto: date) -> list[date]:
        """Review dates d with after < d <= upto, in order."""
        found = []
        for year in range(after.year, upto.year + 1):
            for month, day in self.review_dates:
                d = date(year, month, day)
                if after < d <= upto:
                    found.append(d)
        return sorted(found)


@dataclass(frozen=True)
class Membership:
    level: str
    since: date
    """When the customer reached `level`."""
    evaluated_on: date
    grace_until: date | None = None


@dataclass(frozen=True)
class Decision:
    membership: Membership
    change: Change | None
    previous: str | None
    """The level before (None for a customer joining)."""


def evaluate(rules: Rules, current: Membership | None, value: float, on: date) -> Decision:
    """The membership after evaluating `value` (rolling spend or points ending on `on`)."""
    target = rules.qualified(value)
    if current is None:
        return Decision(Membership(target.code, on, on), Change.JOIN, None)
    if on < current.evaluated_on:
        raise ValueError(f"evaluation on {on} is before the last one ({current.evaluated_on})")
    held, reached = rules.rank(current.level), rules.rank(target.code)
    moved = Membership(target.code, on, on)
    if reached > held:
        return Decision(moved, Change.UPGRADE, current.level)
    if reached == held:
        return Decision(replace(current, evaluated_on=on, grace_until=None), None, current.level)
    grace_until = current.grace_until
    if grace_until is None:
        reviews = rules.reviews_between(current.evaluated_on, on)
        if not reviews:
            return Decision(replace(current, evaluated_on=on), None, current.level)
        grace_until = reviews[0] + timedelta(days=rules.grace_days)
    if on >= grace_until:
        return Decision(moved, Change.DOWNGRADE, current.level)
    return Decision(replace(current, evaluated_on=on, grace_until=grace_until), None, current.level)
