"""Segment schemes: ordered rule tables over R/F/M scores, first match wins.

A scheme must cover every (R, F, M) cell of 1..5 and every rule must win at least one cell;
otherwise it is rejected when the configuration loads, not when a run is half done.
"""

from __future__ import annotations

from itertools import product

from pydantic import BaseModel, ConfigDict, field_validator

SCORES = range(1, 6)


def parse_range(spec: str | int) -> frozenset[int]:
    """'1-2' -> {1, 2}; '5' or 5 -> {5}; '1,3-4' -> {1, 3, 4}. Scores are 1..5."""
    out: set[int] = set()
    for part in str(spec).replace(" ", "").split(","):
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise ValueError(f"{spec!r} is not a score range like '1-2' or '5'") from None
        if not (1 <= a <= b <= 5):
            raise ValueError(f"{spec!r} must lie within 1-5, low before high")
        out.update(range(a, b + 1))
    return frozenset(out)


class SegmentRule(BaseModel):
    """One row of a scheme: the segment given to customers whose scores fall in all ranges."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    segment: str
    r: frozenset[int] = frozenset(SCORES)
    f: frozenset[int] = frozenset(SCORES)
    m: frozenset[int] = frozenset(SCORES)

    @field_validator("r", "f", "m", mode="before")
    @classmethod
    def _ranges(cls, v: object) -> object:
        return parse_range(v) if isinstance(v, str | int) else v

    def matches(self, r: int, f: int, m: int) -> bool:
        return r in self.r and f in self.f and m in self.m

    @property
    def reason(self) -> str:
        """Human-readable rule text stored as `rfm_segment_reason`."""

        def fmt(name: str, s: frozenset[int]) -> str | None:
            if s == frozenset(SCORES):
                return None
            lo, hi = min(s), max(s)
            body = str(lo) if lo == hi else f"{lo}-{hi}"
            if len(s) != hi - lo + 1:
                body = ",".join(map(str, sorted(s)))
            return f"{name}{body}"

        parts = [p for p in (fmt("R", self.r), fmt("F", self.f), fmt("M", self.m)) if p]
        return " & ".join(parts) or "any"


def check_scheme(name: str, rules: list[SegmentRule]) -> None:
    """Raise ValueError naming the first uncovered cell or unreachable rule."""
    if not rules:
        raise ValueError(f"segment scheme {name!r} has no rules")
    won = [0] * len(rules)
    for r, f, m in product(SCORES, SCORES, SCORES):
        hit = next((i for i, rule in enumerate(rules) if rule.matches(r, f, m)), None)
        if hit is None:
            raise ValueError(f"segment scheme {name!r} leaves cell R{r} F{f} M{m} uncovered")
        won[hit] += 1
    for i, n in enumerate(won):
        if n == 0:
            raise ValueError(
                f"segment scheme {name!r}: rule {i + 1} ({rules[i].segment}) is unreachable, "
                "earlier rules match all of its cells"
            )


def _rule(segment: str, r: str, f: str) -> SegmentRule:
    return SegmentRule.model_validate({"segment": segment, "r": r, "f": f})


RF10: list[SegmentRule] = [
    _rule("hibernating", "1-2", "1-2"),
    _rule("at_risk", "1-2", "3-4"),
    _rule("cant_lose", "1-2", "5"),
    _rule("about_to_sleep", "3", "1-2"),
    _rule("need_attention", "3", "3"),
    _rule("loyal", "3-4", "4-5"),
    _rule("promising", "4", "1"),
    _rule("new", "5", "1"),
    _rule("potential_loyalist", "4-5", "2-3"),
    _rule("champions", "5", "4-5"),
]
"""DESIGN.md default scheme: every R x F cell is covered exactly once."""

BUILTIN_SCHEMES: dict[str, list[SegmentRule]] = {"rf10": RF10}
