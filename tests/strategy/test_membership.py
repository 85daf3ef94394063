"""Membership levels: boundaries, immediate upgrades, downgrades only after a review date and
its grace period, and the configuration that feeds the rules."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierwise.core.errors import ConfigError
from tierwise.core.settings import Settings
from tierwise.strategy.membership import Change, Level, Membership, Rules, evaluate

LEVELS = (
    Level("regular", "普通", 0),
    Level("silver", "银卡", 1_000),
    Level("gold", "金卡", 5_000),
    Level("diamond", "钻石", 20_000),
)
RULES = Rules(LEVELS, review_dates=((1, 1),), grace_days=30)
REVIEW = date(2025, 1, 1)
GRACE_END = REVIEW + timedelta(days=30)


def gold_since(day: date, evaluated: date | None = None, grace: date | None = None) -> Membership:
    return Membership("gold", day, evaluated or day, grace)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (-50.0, "regular"),  # returns exceeding purchases
        (0.0, "regular"),
        (999.99, "regular"),
        (1_000.0, "silver"),
        (4_999.99, "silver"),
        (5_000.0, "gold"),
        (19_999.99, "gold"),
        (20_000.0, "diamond"),
        (1e9, "diamond"),
    ],
)
def test_the_highest_level_reached_counts_thresholds_included(value, code):
    assert RULES.qualified(value).code == code


def test_a_first_evaluation_joins_at_the_level_reached():
    d = evaluate(RULES, None, 6_000, date(2024, 5, 1))
    assert d.change is Change.JOIN and d.previous is None
    assert d.membership == Membership("gold", date(2024, 5, 1), date(2024, 5, 1), None)


@pytest.mark.parametrize(("value", "code"), [(5_000, "gold"), (25_000, "diamond")])
def test_upgrades_take_effect_at_once_even_far_from_a_review(value, code):
    before = Membership("silver", date(2024, 2, 1), date(2024, 6, 1))
    on = date(2024, 6, 2)
    d = evaluate(RULES, before, value, on)
    assert d.change is Change.UPGRADE and d.previous == "silver"
    assert (d.membership.level, d.membership.since, d.membership.grace_until) == (code, on, None)


def test_falling_short_between_reviews_keeps_the_level():
    before = gold_since(date(2024, 3, 1), evaluated=date(2024, 11, 30))
    d = evaluate(RULES, before, 10.0, date(2024, 12, 31))  # the day before the review
    assert d.change is None
    assert d.membership == Membership("gold", date(2024, 3, 1), date(2024, 12, 31), None)


def test_the_review_date_starts_the_grace_period_instead_of_a_downgrade():
    before = gold_since(date(2024, 3, 1), evaluated=date(2024, 12, 31))
    d = evaluate(RULES, before, 1_500, REVIEW)  # on the review date itself
    assert d.change is None and d.membership.level == "gold"
    assert d.membership.grace_until == GRACE_END and d.membership.since == date(2024, 3, 1)


def test_grace_ends_with_a_downgrade_to_the_level_reached_then():
    in_grace = gold_since(date(2024, 3, 1), evaluated=REVIEW, grace=GRACE_END)
    last_day = evaluate(RULES, in_grace, 1_500, GRACE_END - timedelta(days=1))
    assert last_day.change is None and last_day.membership.level == "gold"
    assert last_day.membership.grace_until == GRACE_END
    dropped = evaluate(RULES, last_day.membership, 200, GRACE_END)
    assert dropped.change is Change.DOWNGRADE and dropped.previous == "gold"
    assert dropped.membership == Membership("regular", GRACE_END, GRACE_END, None)


def test_requalifying_during_grace_keeps_the_level_until_the_next_review():
    in_grace = gold_since(date(2024, 3, 1), evaluated=REVIEW, grace=GRACE_END)
    saved = evaluate(RULES, in_grace, 5_000, REVIEW + timedelta(days=10))
    assert saved.change is None and saved.membership.grace_until is None
    # short again after grace would have ended: no review since, so nothing happens
    later = evaluate(RULES, saved.membership, 100, date(2025, 12, 31))
    assert later.change is None and later.membership.level == "gold"
    reviewed = evaluate(RULES, later.membership, 100, date(2026, 1, 1))
    assert reviewed.membership.grace_until == date(2026, 1, 31)


def test_an_upgrade_during_grace_clears_it():
    in_grace = gold_since(date(2024, 3, 1), evaluated=REVIEW, grace=GRACE_END)
    d = evaluate(RULES, in_grace, 30_000, REVIEW + timedelta(days=3))
    assert d.change is Change.UPGRADE and d.membership.grace_until is None


def test_without_grace_the_review_itself_downgrades():
    rules = Rules(LEVELS, review_dates=((1, 1),), grace_days=0)
    before = gold_since(date(2024, 3, 1), evaluated=date(2024, 12, 31))
    d = evaluate(rules, before, 1_200, REVIEW)
    assert d.change is Change.DOWNGRADE and d.membership.level == "silver"


def test_an_evaluation_after_review_and_grace_both_passed_downgrades_at_once():
    before = gold_since(date(2024, 3, 1), evaluated=date(2024, 10, 1))
    d = evaluate(RULES, before, 0, date(2025, 3, 1))
    assert d.change is Change.DOWNGRADE and d.membership.level == "regular"
    within = evaluate(RULES, before, 0, date(2025, 1, 15))  # review passed, grace running
    assert within.change is None and within.membership.grace_until == GRACE_END


def test_semiannual_reviews_and_reviews_across_years():
    rules = Rules(LEVELS, review_dates=((7, 1), (1, 1)), grace_days=0)
    assert rules.reviews_between(date(2024, 6, 30), date(2025, 7, 1)) == [
        date(2024, 7, 1),
        date(2025, 1, 1),
        date(2025, 7, 1),
    ]
    assert rules.reviews_between(date(2024, 7, 1), date(2024, 12, 31)) == []
    before = gold_since(date(2024, 3, 1), evaluated=date(2024, 6, 30))
    assert evaluate(rules, before, 0, date(2024, 7, 1)).change is Change.DOWNGRADE


def test_a_level_no_longer_configured_is_regraded_at_once():
    d = evaluate(
        RULES, Membership("platinum", date(2024, 1, 1), date(2024, 6, 1)), 0, date(2024, 6, 2)
    )
    assert d.membership.level == "regular" and d.change is Change.UPGRADE


def test_evaluations_never_go_back_in_time():
    with pytest.raises(ValueError, match="before the last one"):
        evaluate(RULES, gold_since(date(2024, 3, 1)), 6_000, date(2024, 2, 1))


@pytest.mark.parametrize(
    ("levels", "reviews", "match"),
    [
        ((Level("a", "A", 10),), ((1, 1),), "starting at 0"),
        ((Level("a", "A", 0), Level("b", "B", 0)), ((1, 1),), "increasing"),
        (LEVELS, (), "review date"),
        (LEVELS, ((2, 29),), "day is out of range"),
    ],
)
def test_rules_refuse_inconsistent_levels_and_dates(levels, reviews, match):
    with pytest.raises(ValueError, match=match):
        Rules(levels, review_dates=reviews)


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(0, 40),
    value=st.floats(-100, 30_000, allow_nan=False),
    steps=st.lists(
        st.tuples(st.integers(1, 120), st.floats(-100, 30_000, allow_nan=False)),
        min_size=1,
        max_size=25,
    ),
    grace=st.integers(0, 60),
)
def test_levels_never_lag_spend_and_drop_only_after_review_and_grace(start, value, steps, grace):
    """Whatever the sequence: the level is never below the one reached (upgrades are
    immediate), and a customer short of their level drops exactly when a review date plus the
    grace period has passed since they last reached it."""
    rules = Rules(LEVELS, review_dates=((1, 1), (7, 1)), grace_days=grace)
    on = date(2024, 1, 1) + timedelta(days=start)
    current = evaluate(rules, None, value, on).membership
    last_ok = on  # last evaluation at which the customer reached their level
    for gap, v in steps:
        on += timedelta(days=gap)
        d = evaluate(rules, current, v, on)
        reached = rules.rank(rules.qualified(v).code)
        assert rules.rank(d.membership.level) >= reached
        if reached < rules.rank(current.level):
            reviews = rules.reviews_between(last_ok, on)
            due = bool(reviews) and reviews[0] + timedelta(days=grace) <= on
            assert (d.change is Change.DOWNGRADE) == due
        if d.change is Change.DOWNGRADE:
            assert d.membership.level == rules.qualified(v).code
        if rules.rank(d.membership.level) <= reached:
            last_ok = on
        current = d.membership


def test_settings_define_the_default_levels_and_refuse_bad_ones(tmp_path):
    m = Settings(root=tmp_path).membership
    assert [(x.code, x.name, x.min_value) for x in m.levels] == [
        ("regular", "普通", 0),
        ("silver", "银卡", 1_000),
        ("gold", "金卡", 5_000),
        ("diamond", "钻石", 20_000),
    ]
    toml = tmp_path / "tierwise.toml"
    toml.write_text(
        "[membership]\nreview_dates = ['13-01']\n"
        "levels = [{code = 'a', name = 'A', min_value = 0},"
        " {code = 'b', name = 'B', min_value = 0}]\n"
    )
    with pytest.raises(ConfigError, match="strictly increasing"):
        Settings.load(toml)
    toml.write_text("[membership]\nreview_dates = ['02-29']\n")
    with pytest.raises(ConfigError, match="not MM-DD"):
        Settings.load(toml)
