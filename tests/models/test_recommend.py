"""Recommenders, ranking metrics and behaviour clusters on data whose answer is known."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from tierwise.core.errors import DataError
from tierwise.models import recommend as rec
from tierwise.models.clusters import BehaviourClusters
from tierwise.models.rec_eval import ranking_metrics, split_relevant
from tierwise.models.recommend import (
    ALS,
    NEW,
    REPEAT,
    BuyAgain,
    CoOccurrence,
    Interactions,
    Popularity,
    Reason,
    SegmentPopularity,
)


def data(rows: list[tuple[str, str, float]], segments: dict[str, str] | None = None):
    frame = pd.DataFrame(rows, columns=["customer_id", "product_id", "weight"])
    return Interactions.from_frame(
        frame, products=["z"], segments=None if segments is None else pd.Series(segments)
    )


SMALL = [
    ("a", "p1", 3.0), ("a", "p2", 1.0), ("a", "p3", 0.5),
    ("b", "p1", 1.0), ("b", "p4", 2.0),
    ("c", "p2", 1.0), ("c", "p4", 1.0), ("c", "p5", 1.0),
    ("d", "p4", 4.0),
]  # fmt: skip


def lists(recs: pd.DataFrame) -> dict[str, list[str]]:
    return recs.groupby("customer_id")["product_id"].apply(list).to_dict()


def test_buy_again_ranks_own_products_by_decayed_weight_and_has_no_new_items():
    d = data(SMALL)
    model = BuyAgain().fit(d)
    repeat = model.recommend(d, n=2, kind=REPEAT)
    assert lists(repeat) == {"a": ["p1", "p2"], "b": ["p4", "p1"], "c": ["p2", "p4"], "d": ["p4"]}
    assert set(repeat.reason) == {Reason.BOUGHT_OFTEN.value}
    assert (repeat.groupby("customer_id")["rank"].apply(list).map(lambda r: r[0]) == 1).all()
    assert model.recommend(d, n=3, kind=NEW).empty


def test_popularity_never_offers_owned_or_excluded_products():
    d = data(SMALL)
    model = Popularity().fit(d)
    # overall weights: p4 7, p1 4, p2 2, p5 1, p3 0.5, z 0 (never bought: never popular)
    exclude = d.item_mask(["p1"])
    new = lists(model.recommend(d, n=2, kind=NEW, exclude=exclude))
    assert new == {"a": ["p4", "p5"], "b": ["p2", "p5"], "c": ["p3"], "d": ["p2", "p5"]}
    repeat = lists(model.recommend(d, n=5, kind=REPEAT, exclude=exclude))
    assert repeat["a"] == ["p2", "p3"]  # p1 excluded even though owned


def test_segment_popularity_uses_the_segment_and_falls_back_for_small_ones():
    rows = [(f"x{i}", "p1", 1.0) for i in range(4)] + [(f"y{i}", "p2", 1.0) for i in range(3)]
    rows += [("x0", "p3", 0.1), ("lone", "p4", 9.0)]
    segments = {**{f"x{i}": "X" for i in range(4)}, **{f"y{i}": "Y" for i in range(3)}}
    d = data(rows, segments)
    model = SegmentPopularity(min_customers=3).fit(d)
    new = lists(model.recommend(d, n=1, kind=NEW))
    assert new["x1"] == ["p3"]  # within X: p1 (owned), then p3
    assert "y0" not in new  # Y bought only p2, which y0 owns: nothing popular in Y is left
    assert new["lone"] == ["p1"]  # no segment: overall p4 (owned), then p1
    assert set(model.segments_) == {"X", "Y"}
    with pytest.raises(DataError, match="segments"):
        SegmentPopularity().fit(data(SMALL))


def test_cooccurrence_scores_and_names_the_product_it_comes_from():
    d = data(SMALL)
    neighbours = pd.DataFrame(
        [("p1", "p4", 0.5), ("p2", "p4", 0.4), ("p2", "p5", 0.3), ("p3", "p5", 0.9),
         ("p4", "p1", 0.5), ("p1", "unknown", 1.0)],
        columns=["product_id", "neighbour_id", "similarity"],
    )  # fmt: skip
    model = CoOccurrence().fit(d, neighbours)
    new = model.recommend(d, n=5, kind=NEW)
    a = new[new.customer_id == "a"].set_index("product_id")
    # a holds p1 (3), p2 (1), p3 (0.5): p4 = 3·0.5 + 1·0.4 = 1.9 via p1; p5 = 0.3 + 0.45 via p3
    assert list(a.index) == ["p4", "p5"]
    assert a.loc["p4", "score"] == pytest.approx(1.9) and a.loc["p4", "related_product_id"] == "p1"
    assert a.loc["p5", "score"] == pytest.approx(0.75) and a.loc["p5", "related_product_id"] == "p3"
    assert set(new.reason) == {Reason.BOUGHT_WITH.value}
    assert lists(model.recommend(d, n=5, kind=REPEAT))["b"] == ["p1", "p4"]  # p1 ← p4 (2·0.5)
    with pytest.raises(DataError):
        CoOccurrence().fit(d)


def test_als_recovers_two_taste_groups():
    """Two groups buy from disjoint halves of the catalogue: a customer's new items must
    come from their own half."""
    rng = np.random.default_rng(0)
    rows = []
    for c in range(200):
        half = c % 2
        for p in rng.choice(10, size=4, replace=False):
            rows.append((f"c{c:03d}", f"p{half}{p}", 1.0))
    d = data(rows)
    model = ALS(factors=2, iterations=10, random_state=0).fit(d)
    new = model.recommend(d, n=3, kind=NEW)
    half = new.customer_id.str[1:].astype(int) % 2
    assert (new.product_id.str[1].astype(int) == half).all()
    assert set(new.reason) == {Reason.CUSTOMERS_LIKE_YOU.value}
    restored = pickle.loads(pickle.dumps(model))
    pd.testing.assert_frame_equal(restored.recommend(d, n=3, kind=NEW), new)


@pytest.mark.parametrize("kind", [REPEAT, NEW])
@pytest.mark.parametrize("make", [Popularity, CoOccurrence, ALS])
def test_batched_top_n_equals_a_dense_brute_force(monkeypatch, kind, make):
    """Scores per (customer, product) computed densely, sorted with ties by product id: the
    batched sparse path must return exactly that, whatever the batch size."""
    rng = np.random.default_rng(3)
    rows = [
        (f"c{c:02d}", f"p{p:02d}", float(rng.integers(1, 4)))
        for c in range(40)
        for p in rng.choice(25, size=int(rng.integers(1, 8)), replace=False)
    ]
    d = data(rows)
    neighbours = pd.DataFrame(
        [(f"p{a:02d}", f"p{b:02d}", float(rng.integers(1, 5)) / 4)
         for a in range(25) for b in rng.choice(25, 4, replace=False) if a != b],
        columns=["product_id", "neighbour_id", "similarity"],
    )  # fmt: skip
    model = make(factors=4, iterations=5) if make is ALS else make()
    model = model.fit(d, neighbours) if make is CoOccurrence else model.fit(d)
    w = d.weights.toarray()
    if make is Popularity:
        dense = np.tile(w.sum(axis=0), (len(w), 1))
    elif make is CoOccurrence:
        dense = w @ model.similarity_.toarray()
    else:
        dense = model.user_factors_ @ model.item_factors_.T
    exclude = d.item_mask(["p03", "p07"])
    owned = w > 0
    expected = {}
    for i, c in enumerate(d.customers):
        ok = (owned[i] if kind == REPEAT else ~owned[i]) & ~exclude
        if make is CoOccurrence and kind == NEW:
            ok &= dense[i] > 0  # co-occurrence only proposes neighbours
        items = [j for j in np.lexsort((np.arange(w.shape[1]), -dense[i])) if ok[j]][:5]
        if items:
            expected[c] = list(d.products[items])
    monkeypatch.setattr(rec, "BATCH_CELLS", 7 * len(d.products))  # 7 customers per batch
    got = lists(model.recommend(d, n=5, kind=kind, exclude=exclude))
    assert got == expected


def test_unknown_models_and_unfitted_use_fail_clearly():
    d = data(SMALL)
    with pytest.raises(rec.NotFittedError):
        Popularity().recommend(d)
    fitted = Popularity().fit(d)
    with pytest.raises(DataError, match="fitted on"):
        fitted.recommend(data([("a", "q", 1.0)]))
    with pytest.raises(ValueError, match="kind"):
        fitted.recommend(d, kind="other")
    assert list(d.rows_of(["a", "nobody", "d"])) == [0, -1, 3]


def test_ranking_metrics_by_hand():
    recs = pd.DataFrame(
        {"customer_id": ["a", "a", "a", "b", "b"], "product_id": ["x", "y", "z", "x", "q"],
         "rank": [1, 2, 3, 1, 2]}
    )  # fmt: skip
    relevant = pd.DataFrame(
        {"customer_id": ["a", "a", "b", "c"], "product_id": ["y", "w", "q", "x"]}
    )
    m = ranking_metrics(recs, relevant, k=2)
    # a: hit y at rank 2 of 2 relevant; b: hit q at rank 2 of 1; c: no recommendations
    assert m["customers"] == 3
    assert m["precision"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert m["recall"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert m["hit_rate"] == pytest.approx(2 / 3)
    g = 1 / np.log2(3)
    assert m["ndcg"] == pytest.approx((g / (1 + g) + g / 1 + 0) / 3)
    assert ranking_metrics(recs, relevant.iloc[:0], k=2)["recall"] is None


def test_split_relevant_separates_repeat_from_new_items():
    history = pd.DataFrame({"customer_id": ["a", "a", "b"], "product_id": ["x", "y", "x"]})
    test = pd.DataFrame({"customer_id": ["a", "a", "a", "b"], "product_id": ["x", "z", "x", "y"]})
    parts = split_relevant(history, test)
    assert parts[REPEAT].values.tolist() == [["a", "x"]]
    assert sorted(parts[NEW].values.tolist()) == [["a", "z"], ["b", "y"]]


def test_clusters_recover_planted_groups_and_name_what_sets_them_apart():
    rng = np.random.default_rng(1)
    n = 600
    truth = np.repeat([0, 1, 2], n // 3)
    frame = pd.DataFrame(
        {
            "orders": np.where(truth == 0, 40, 3) * rng.lognormal(0, 0.2, n),
            "evening_share": np.clip(np.where(truth == 1, 0.9, 0.2) + rng.normal(0, 0.05, n), 0, 1),
            "discount_share": np.clip(rng.normal(0.3, 0.05, n), 0, 1),
            "views": rng.poisson(5, n).astype(float),
        }
    )
    frame.loc[5, "views"] = np.nan  # missing values are filled, not fatal
    model = BehaviourClusters(k_min=2, k_max=6, random_state=0).fit(frame)
    assert model.k_ == 3
    labels = model.predict(frame)
    assert adjusted_rand_score(truth, labels) > 0.95
    by_label = {p.cluster: p for p in model.profiles_}
    heavy = pd.Series(labels[truth == 0]).mode()[0]
    evening = pd.Series(labels[truth == 1]).mode()[0]
    assert by_label[heavy].distinctions[0].feature == "orders" and by_label[heavy].label.startswith(
        "high orders"
    )
    assert by_label[evening].distinctions[0].feature == "evening_share"
    sizes = [p.customers for p in model.profiles_]
    assert sizes == sorted(sizes, reverse=True)  # c1 is the largest
    with pytest.raises(DataError):
        BehaviourClusters().fit(frame.iloc[:2])


def test_cooccurrence_without_any_neighbours_still_ranks_owned_products():
    d = data(SMALL)
    empty = pd.DataFrame(columns=["product_id", "neighbour_id", "similarity"])
    model = CoOccurrence().fit(d, empty.astype({"similarity": float}))
    assert model.recommend(d, n=3, kind=NEW).empty
    assert lists(model.recommend(d, n=3, kind=REPEAT))["a"] == ["p1", "p2", "p3"]  # ties: by id
