"""The condition language: parsing, type checks, two-valued evaluation, hostile input."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tierwise.core.errors import InvalidInputError
from tierwise.strategy import conditions as cond
from tierwise.strategy.conditions import (
    And,
    Compare,
    ConditionError,
    IsNull,
    Member,
    Not,
    Or,
    evaluate,
    parse,
    render,
)

HOSTILE = "'; DROP TABLE users; --"

VIP = {
    "value_tier": "high",
    "lifecycle_stage": "dormant",
    "churn_probability": 0.72,
    "clv": 5200.0,
    "orders": 7,
    "consent_marketing": True,
    "city": "杭州",
    "unresolved_complaints": 0,
}


def test_aliases_parse_to_profile_keys_and_precedence_is_not_and_or():
    node = parse("tier = 'high' or not stage in ('churned') and clv >= 1e3")
    assert node == Or(
        (
            Compare("value_tier", "=", "high"),
            And(
                (
                    Not(Member("lifecycle_stage", ("churned",))),
                    Compare("clv", ">=", 1000.0),
                )
            ),
        )
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tier = 'high' and clv > 5000", True),
        ("tier == 'high' and clv > 5200", False),
        ("stage in ('dormant', 'churned') and churn_probability >= 0.72", True),
        ("stage not in ('dormant', 'churned')", False),
        ("orders <> 7 or consent = false", False),
        ("not (orders < 7) and orders <= 7", True),
        ("clv > -1 and unresolved_complaints = 0", True),
        ("city = '杭州' AND NOT consent = FALSE", True),
        ("profit is null and clv is not null", True),
        ("(((tier = 'high')))", True),
    ],
)
def test_evaluates_against_a_profile(text: str, expected: bool):
    assert evaluate(parse(text), VIP) is expected


def test_a_missing_value_makes_every_comparison_false_and_not_negates_exactly():
    blank: dict[str, object] = {}
    for text in ("clv > 0", "clv <= 0", "tier = 'high'", "tier != 'high'", "tier not in ('low')"):
        assert evaluate(parse(text), blank) is False, text
        assert evaluate(parse(f"not ({text})"), blank) is True, text
    assert evaluate(parse("tier is null"), blank) is True


def test_values_of_the_wrong_type_count_as_missing():
    odd = {"clv": "5000", "consent_marketing": "true", "city": 7, "orders": True}
    assert evaluate(parse("clv is null and consent is null and city is null"), odd)
    assert evaluate(parse("orders is null"), odd)  # a yes/no is not a number


def test_quotes_are_doubled_inside_text():
    node = parse("""city = 'it''s' or city = "say ""hi\"\"\"""")
    assert node == Or((Compare("city", "=", "it's"), Compare("city", "=", 'say "hi"')))


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("tierr = 'high'", "unknown field 'tierr'", 0),
        ("tier > 'high'", "tier is text; > compares numbers only", 5),
        ("clv = 'lots'", "clv is number, not text", 6),
        ("consent = 1", "consent is yes/no, not number", 10),
        ("tier = 'gold'", "'gold' is not a value of tier", 7),
        ("tier = 'high", "text is not closed", 7),
        ("tier = 'high' clv > 1", "expected `and`, `or` or the end, found 'clv'", 14),
        ("tier = 'high' and", "expected a field name, found the end", 17),
        ("tier = null", "compare with null using `tier is null`", 7),
        ("tier in 'high'", "expected `(` starting the list", 8),
        ("clv > 1 ; drop", "unexpected character ';'", 8),
        ("tier high", "expected an operator after tier", 5),
        ("", "empty condition", 0),
    ],
)
def test_errors_say_what_and_where(text: str, message: str, offset: int):
    with pytest.raises(ConditionError) as caught:
        parse(text)
    assert message in caught.value.message
    assert caught.value.offset == offset
    assert isinstance(caught.value, InvalidInputError)


def test_nesting_and_length_are_bounded():
    with pytest.raises(ConditionError, match="nested deeper"):
        parse("(" * 40 + "clv > 1" + ")" * 40)
    with pytest.raises(ConditionError, match="nested deeper"):
        parse("not " * 40 + "clv > 1")
    with pytest.raises(ConditionError, match="longer than"):
        parse("clv > 1 or " * 300 + "clv > 1")


def test_hostile_strings_are_inert():
    """As a field they do not parse; as a value they are only ever compared."""
    for text in (f"{HOSTILE} = 'x'", "users; DROP TABLE users = 1", f"city = 1; {HOSTILE}"):
        with pytest.raises(ConditionError):
            parse(text)
    quoted = HOSTILE.replace("'", "''")
    node = parse(f"city = '{quoted}'")
    assert node == Compare("city", "=", HOSTILE)
    assert evaluate(node, {"city": HOSTILE}) and not evaluate(node, {"city": "x"})
    with pytest.raises(ConditionError, match="control characters"):
        parse("city = 'a\x00b'")


def test_keys_and_literals_of_a_condition():
    node = parse("tier = 'high' and (clv > 10 or clv < 2) and region is null")
    assert cond.keys_of(node) == {"value_tier", "clv", "region"}
    assert cond.literals_of(node) == {"value_tier": {"high"}, "clv": {10.0, 2.0}, "region": set()}


def test_custom_segments_can_be_allowed():
    with pytest.raises(ConditionError):
        parse("segment = 'best'")
    fields = cond.with_segments(frozenset({"best"}))
    assert parse("segment = 'best' or rfm_segment = 'champions'", fields) == Or(
        (Compare("rfm_segment", "=", "best"), Compare("rfm_segment", "=", "champions"))
    )


# --- render and parse agree ---------------------------------------------------------------------

NUMBER_KEYS = ["clv", "orders", "churn_probability", "mean_nps"]
TEXT_KEYS = ["city", "account_manager"]
numbers = st.floats(allow_nan=False, allow_infinity=False)
texts = st.text().filter(lambda s: not any(ord(c) < 32 or ord(c) == 127 for c in s))


def _leaf(key_kind: tuple[str, st.SearchStrategy[object]]) -> st.SearchStrategy[cond.Node]:
    key, values = key_kind
    compare_ops = st.sampled_from(cond.COMPARISONS if key in NUMBER_KEYS else ("=", "!="))
    return st.one_of(
        st.builds(Compare, st.just(key), compare_ops, values),
        st.builds(
            Member, st.just(key), st.lists(values, min_size=1, max_size=3).map(tuple), st.booleans()
        ),
        st.builds(IsNull, st.just(key), st.booleans()),
    )


leaves = st.one_of(
    *(_leaf((k, numbers)) for k in NUMBER_KEYS),
    *(_leaf((k, texts)) for k in TEXT_KEYS),
    _leaf(("value_tier", st.sampled_from(["high", "mid", "low"]))),
    _leaf(("consent_marketing", st.booleans())),
)
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=8,
)


def depth(node: cond.Node) -> int:
    if isinstance(node, Not):
        return 1 + depth(node.operand)
    if isinstance(node, And | Or):
        return 1 + max(depth(part) for part in node.operands)
    return 0


@given(trees)
@settings(max_examples=300, deadline=None)
def test_rendered_conditions_parse_back_to_the_same_tree(node: cond.Node):
    assume(depth(node) <= 12)
    assert parse(render(node)) == node
