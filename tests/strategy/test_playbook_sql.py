"""Property: conditions compiled to SQL select exactly the profiles the pure evaluator accepts, on
SQLite and PostgreSQL, over typed columns and JSON-only fields alike (missing values, values of
the wrong JSON type, hostile text), and hostile strings in conditions are only ever compared."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, select
from tests.strategy.conftest import BACKENDS, HOSTILE, profiles, settings_for

from tierwise.services import playbook as svc
from tierwise.services.serving import Store, open_store
from tierwise.store.models import PublishedProfile
from tierwise.store.publish import publish_run
from tierwise.strategy import conditions as cond
from tierwise.strategy.conditions import And, Compare, IsNull, Member, Not, Or

ODD = [
    # JSON-only fields holding values of the wrong type, or numbers at the edges
    {"mean_nps": "42.5", "is_unprofitable": "yes", "city": 7, "unresolved_complaints": True},
    {"mean_nps": True, "is_unprofitable": 1, "city": None, "unresolved_complaints": "3"},
    {"mean_nps": 1e300, "is_unprofitable": None, "city": ["杭州"], "unresolved_complaints": -0.0},
    {"mean_nps": -1e-300, "city": {"nested": HOSTILE}, "unresolved_complaints": 2**40},
]


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Store, list[dict[str, Any]], str]]:
    """A store with one published run, the records the evaluator sees, and the dialect."""
    directory: Path = tmp_path_factory.mktemp("conditions")
    store = open_store(settings_for(request, request.param, directory))
    rows = profiles(160, seed=3)
    for i, odd in enumerate(ODD):
        rows[i] = {k: v for k, v in rows[i].items() if k not in odd} | odd
    rows[10].pop("city")  # a key missing from the document altogether
    publish_run(store.write, "run-1", date(2024, 12, 31), rows)
    with store.read() as session:
        records = [svc.record_of(p) for p in session.scalars(select(PublishedProfile))]
    yield store, records, store.engine.dialect.name
    store.close()


NUMBER_KEYS = ["clv", "orders", "churn_probability", "revenue", "mean_nps", "unresolved_complaints"]
TEXT_KEYS = ["city", "account_manager"]
BOOL_KEYS = ["consent_marketing", "is_unprofitable"]
CHOICE_KEYS = {"value_tier": ["high", "mid", "low"], "lifecycle_stage": ["new", "churned"]}

numbers = st.one_of(
    st.sampled_from([-5.0, 0.0, 0.3, 0.6, 1.0, 2.0, 42.5, 120.5, 999.99, 5000.0, 1e300, 2.0**40]),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
)
texts = st.one_of(
    st.sampled_from(["杭州", "上海", HOSTILE, "O'Brien", "", "ag1", "ag2", "7", "%", "_"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=12),
)


def leaves_for(key: str, values: st.SearchStrategy[Any], ordered: bool) -> st.SearchStrategy[Any]:
    ops = st.sampled_from(cond.COMPARISONS if ordered else ("=", "!="))
    return st.one_of(
        st.builds(Compare, st.just(key), ops, values),
        st.builds(
            Member, st.just(key), st.lists(values, min_size=1, max_size=3).map(tuple), st.booleans()
        ),
        st.builds(IsNull, st.just(key), st.booleans()),
    )


leaves = st.one_of(
    *(leaves_for(k, numbers, True) for k in NUMBER_KEYS),
    *(leaves_for(k, texts, False) for k in TEXT_KEYS),
    *(leaves_for(k, st.booleans(), False) for k in BOOL_KEYS),
    *(leaves_for(k, st.sampled_from(v), False) for k, v in CHOICE_KEYS.items()),
)
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=6,
)


def selected(store: Store, node: cond.Node, dialect: str) -> set[str]:
    with store.read() as session:
        query = select(PublishedProfile.customer_id).where(svc.compile_condition(node, dialect))
        return set(session.scalars(query))


@given(node=trees)
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_compiled_conditions_select_what_the_pure_evaluator_accepts(seeded, node: cond.Node):
    store, records, dialect = seeded
    text = cond.render(node)
    parsed = cond.parse(text)  # through the text, as a playbook file would give it
    assert parsed == node
    expected = {r["customer_id"] for r in records if cond.evaluate(parsed, r)}
    assert selected(store, parsed, dialect) == expected, text


def test_the_data_really_holds_odd_values(seeded):
    """The property above is only as strong as its data: nulls, wrong types and hostile text."""
    store, records, dialect = seeded
    by_id = {r["customer_id"]: r for r in records}
    assert by_id["C00000"]["mean_nps"] == "42.5" and by_id["C00001"]["is_unprofitable"] == 1
    assert any(r.get("city") == HOSTILE for r in records)
    assert any(r.get("account_manager") == HOSTILE for r in records)
    assert any(r.get("clv") is None for r in records)
    assert "city" not in by_id["C00010"]
    odd_numbers = cond.parse("mean_nps is null")
    assert {"C00000", "C00001"} <= selected(store, odd_numbers, dialect)
    assert "C00002" not in selected(store, odd_numbers, dialect)  # 1e300 is a number


def test_hostile_values_are_bound_parameters(seeded):
    store, records, dialect = seeded
    node = cond.parse(f"city = '{HOSTILE.replace(chr(39), chr(39) * 2)}' or city in ('%', '_')")
    expected = {r["customer_id"] for r in records if r.get("city") == HOSTILE}
    assert expected and selected(store, node, dialect) == expected
    with store.read() as session:
        compiled = str(
            select(PublishedProfile.customer_id)
            .where(svc.compile_condition(node, dialect))
            .compile(session.get_bind())
        )
    assert "DROP" not in compiled
    assert "users" in inspect(store.engine).get_table_names()
