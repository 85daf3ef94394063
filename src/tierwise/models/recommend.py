"""Next-best products: buy-again, popularity (global and per segment), item-item co-occurrence
and implicit-feedback ALS, all answering the same question in the same shape.

Every recommender ranks two candidate sets of a customer separately: *repeat* items (bought
before) and *new* items (never bought). The two are different problems — buying the usual again
is easy to predict, discovering a product is not — so they are ranked, evaluated and reported
apart, and a model that only knows the customer's past (buy-again) honestly has no new items.

The data is a sparse customers × products matrix of recency-decayed purchase weights
(`Interactions`); nothing ever builds a dense customers × products array. Customers are scored in
batches, and top-N per customer is a vectorised per-row sort of sparse candidates.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from tierwise.core.errors import DataError
from tierwise.models._base import NotFittedError

REPEAT, NEW = "repeat", "new"
KINDS = (REPEAT, NEW)
BATCH_CELLS = 5_000_000
"""Customers are scored in batches of about this many (customer, product) cells at most."""

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]


class Reason(StrEnum):
    """Why a product is recommended; the dashboard words it (with `related_product_id`)."""

    BOUGHT_OFTEN = "bought_often"
    """Buy-again: bought often, and lately."""
    POPULAR = "popular"
    POPULAR_IN_SEGMENT = "popular_in_segment"
    BOUGHT_WITH = "bought_with"
    """Often bought with the related product, which the customer has."""
    CUSTOMERS_LIKE_YOU = "customers_like_you"
    """Collaborative filtering: customers with similar baskets buy it."""


@dataclass(frozen=True)
class Interactions:
    """Customers × products purchase weights, with the ids of both axes (each sorted)."""

    customers: NDArray[Any]
    products: NDArray[Any]
    weights: sp.csr_matrix
    """Recency-decayed number of orders of each product by each customer."""
    segments: NDArray[Any] | None = None
    """Each customer's segment label (None when unknown), for segment popularity."""

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        products: Any = None,
        segments: pd.Series | None = None,
    ) -> Interactions:
        """From rows (customer_id, product_id, weight), as `engine.behaviour.customer_products`
        returns them. `products` adds catalogue items nobody bought (they can still be popular
        in no one's eyes, but exclusion and lookups know them); `segments` maps customer_id to
        a segment label."""
        if not {"customer_id", "product_id", "weight"} <= set(frame.columns):
            raise DataError("interactions need customer_id, product_id and weight columns")
        customers, rows = np.unique(
            frame["customer_id"].astype(str).to_numpy(), return_inverse=True
        )
        names = frame["product_id"].astype(str).to_numpy()
        known = np.unique(
            names if products is None else np.concatenate([names, np.asarray(products, dtype=str)])
        )
        cols = np.searchsorted(known, names)
        weights = sp.csr_matrix(
            (frame["weight"].to_numpy(dtype=np.float64), (rows, cols)),
            shape=(len(customers), len(known)),
        )
        weights.sum_duplicates()
        weights.sort_indices()
        labels = None
        if segments is not None:
            labels = segments.astype(object).reindex(customers).to_numpy(dtype=object)
        return cls(customers.astype(object), known.astype(object), weights, labels)

    def rows_of(self, customer_ids: Any) -> Ints:
        """Row index of each customer id, −1 for customers without interactions."""
        ids = np.asarray(customer_ids, dtype=str)
        known = self.customers.astype(str)
        if len(known) == 0:
            return np.full(len(ids), -1, np.int64)
        pos = np.minimum(np.searchsorted(known, ids), len(known) - 1)
        return np.where(known[pos] == ids, pos, -1).astype(np.int64)

    def item_mask(self, product_ids: Any) -> NDArray[np.bool_]:
        """True for the products among `product_ids`."""
        return np.isin(self.products.astype(str), np.asarray(list(product_ids), dtype=str))


@dataclass(frozen=True)
class Candidates:
    """Scored (customer row, item) candidates of one batch; `related` is an item or −1."""

    row: Ints
    item: Ints
    score: Floats
    related: Ints

    @classmethod
    def empty(cls) -> Candidates:
        nothing = np.zeros(0, np.int64)
        return cls(nothing, nothing, np.zeros(0), nothing)


def _history_keys(history: sp.csr_matrix) -> Ints:
    """Sorted row * n_items + item keys of a batch's history."""
    rows = np.repeat(np.arange(history.shape[0]), np.diff(history.indptr))
    return np.sort(rows * history.shape[1] + history.indices.astype(np.int64))


def _in_sorted(keys: Ints, sorted_keys: Ints) -> NDArray[np.bool_]:
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), bool)
    pos = np.clip(np.searchsorted(sorted_keys, keys), 0, len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def top_n(c: Candidates, n: int) -> Candidates:
    """The `n` best candidates of each row, best first; ties go to the lower item index (ids
    are sorted, so to the smaller product id) so results are reproducible."""
    if len(c.row) == 0:
        return c
    order = np.lexsort((c.item, -c.score, c.row))
    row = c.row[order]
    starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
    rank = np.arange(len(row)) - np.repeat(starts, np.diff(np.r_[starts, len(row)]))
    keep = order[rank < n]
    return Candidates(c.row[keep], c.item[keep], c.score[keep], c.related[keep])


class Recommender(ABC):
    """Base class: `fit(data)`, then `recommend(data, rows, n=…, kind=…)`.

    Subclasses say which kinds they can rank and produce candidates for a batch of customers;
    the base class drops excluded items, keeps repeat or new items, and picks the top N.
    """

    name: ClassVar[str] = ""
    reason: ClassVar[Reason]
    kinds: ClassVar[tuple[str, ...]] = KINDS

    @abstractmethod
    def fit(self, data: Interactions) -> Self:
        """Learn from the weighted customer × product purchases."""

    @abstractmethod
    def _candidates(
        self, data: Interactions, rows: Ints, history: sp.csr_matrix, kind: str, n: int,
        allowed: NDArray[np.bool_],
    ) -> Candidates:  # fmt: skip
        """Scored items for the customers `rows`, at least `n` each where there are enough."""

    def _check_fitted(self, data: Interactions) -> None:
        if not hasattr(self, "n_products_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        if data.weights.shape[1] != self.n_products_:
            raise DataError("recommend on the interactions the model was fitted on")

    def recommend(
        self,
        data: Interactions,
        rows: Any = None,
        *,
        n: int = 10,
        kind: str = NEW,
        exclude: NDArray[np.bool_] | None = None,
    ) -> pd.DataFrame:
        """Top `n` products of `kind` for the customers at `rows` (default: all), never one
        marked in `exclude` (a mask over products).

        Columns: customer_id, product_id, kind, rank (1 = best), score, reason,
        related_product_id (the product a "bought with" recommendation comes from, else None).
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self._check_fitted(data)
        rows = np.arange(len(data.customers)) if rows is None else np.asarray(rows, np.int64)
        allowed = np.ones(len(data.products), bool) if exclude is None else ~np.asarray(exclude)
        if kind not in self.kinds or len(rows) == 0:
            return _frame(data, rows, Candidates.empty(), kind, self.reason)
        parts = []
        size = max(1, BATCH_CELLS // max(len(data.products), 1))
        for start in range(0, len(rows), size):
            batch = rows[start : start + size]
            history = data.weights[batch]
            c = self._candidates(data, batch, history, kind, n, allowed)
            keys = c.row * history.shape[1] + c.item
            owned = _in_sorted(keys, _history_keys(history))
            keep = allowed[c.item] & (owned if kind == REPEAT else ~owned)
            c = Candidates(c.row[keep] + start, c.item[keep], c.score[keep], c.related[keep])
            parts.append(top_n(c, n))
        return _frame(data, rows, _concat(parts), kind, self.reason)


def _frame(
    data: Interactions, rows: Ints, c: Candidates, kind: str, reason: Reason
) -> pd.DataFrame:
    """Long format with ranks 1..n per customer; `c` is in `top_n` order and `c.row` indexes
    `rows`."""
    starts = np.flatnonzero(np.r_[True, c.row[1:] != c.row[:-1]]) if len(c.row) else c.row
    rank = np.arange(len(c.row)) - np.repeat(starts, np.diff(np.r_[starts, len(c.row)]))
    related = np.full(len(c.row), None, dtype=object)
    has = c.related >= 0
    related[has] = data.products[c.related[has]]
    return pd.DataFrame(
        {
            "customer_id": data.customers[rows[c.row]],
            "product_id": data.products[c.item],
            "kind": kind,
            "rank": (rank + 1).astype(np.int64),
            "score": c.score.astype(np.float64),
            "reason": reason.value,
            "related_product_id": related,
        }
    )


def _history_candidates(history: sp.csr_matrix, scores: Floats | None = None) -> Candidates:
    """Every item of every history row, scored by `scores[item]` or by the history weight."""
    coo = history.tocoo()
    item = coo.col.astype(np.int64)
    score = coo.data.astype(np.float64) if scores is None else scores[item]
    return Candidates(coo.row.astype(np.int64), item, score, np.full(len(item), -1, np.int64))


def _ranked_candidates(ranking: Ints, scores: Floats, history: sp.csr_matrix, n: int) -> Candidates:
    """The first n + (history length) items of `ranking` for each row: enough to leave n new
    items after the history is removed."""
    per_row = n + np.diff(history.indptr)
    width = int(min(per_row.max(initial=0), len(ranking)))
    if width == 0:
        return Candidates.empty()
    rows = np.repeat(np.arange(history.shape[0]), width)
    items = np.tile(ranking[:width], history.shape[0])
    return Candidates(rows, items, scores[items], np.full(len(items), -1, np.int64))


class BuyAgain(Recommender):
    """The customer's own products by recency-decayed purchase count (repeat items only)."""

    name = "buy_again"
    reason = Reason.BOUGHT_OFTEN
    kinds = (REPEAT,)

    def fit(self, data: Interactions) -> Self:
        self.n_products_ = len(data.products)
        return self

    def _candidates(self, data, rows, history, kind, n, allowed):  # type: ignore[no-untyped-def]
        return _history_candidates(history)


class Popularity(Recommender):
    """Every customer gets the products with the most recency-decayed purchases overall
    (products nobody bought are never "popular")."""

    name = "popularity"
    reason = Reason.POPULAR

    def fit(self, data: Interactions) -> Self:
        self.n_products_ = len(data.products)
        self.popularity_ = np.asarray(data.weights.sum(axis=0), dtype=np.float64).ravel()
        self.ranking_ = np.lexsort((np.arange(self.n_products_), -self.popularity_))
        return self

    def _candidates(self, data, rows, history, kind, n, allowed):  # type: ignore[no-untyped-def]
        if kind == REPEAT:
            return _history_candidates(history, self.popularity_)
        ranking = self.ranking_[allowed[self.ranking_] & (self.popularity_[self.ranking_] > 0)]
        return _ranked_candidates(ranking, self.popularity_, history, n)


class SegmentPopularity(Recommender):
    """Popularity within the customer's segment; customers without a segment, or in one with
    fewer than `min_customers` members at fit time, get overall popularity."""

    name = "segment_popularity"
    reason = Reason.POPULAR_IN_SEGMENT

    def __init__(self, min_customers: int = 30) -> None:
        self.min_customers = min_customers

    def fit(self, data: Interactions) -> Self:
        if data.segments is None:
            raise DataError("segment popularity needs the customers' segments")
        self.n_products_ = len(data.products)
        idx = np.arange(self.n_products_)
        self.overall_ = np.asarray(data.weights.sum(axis=0), dtype=np.float64).ravel()
        self.overall_ranking_ = np.lexsort((idx, -self.overall_))
        labels = _labels(data.segments)
        names, code = np.unique(labels, return_inverse=True)
        sizes = np.bincount(code, minlength=len(names))
        kept = [s for s in range(len(names)) if names[s] and sizes[s] >= self.min_customers]
        self.segments_ = names[kept]
        self.popularity_ = np.vstack(
            [np.asarray(data.weights[code == s].sum(axis=0), np.float64).ravel() for s in kept]
            or [np.zeros((0, self.n_products_))]
        )
        self.rankings_ = np.vstack(
            [np.lexsort((idx, -p)) for p in self.popularity_] or [np.zeros((0, self.n_products_))]
        ).astype(np.int64)
        return self

    def _codes(self, data: Interactions, rows: Ints) -> Ints:
        """Each row's kept segment, −1 for overall popularity."""
        assert data.segments is not None
        labels = _labels(data.segments[rows])
        if len(self.segments_) == 0:
            return np.full(len(rows), -1, np.int64)
        pos = np.minimum(np.searchsorted(self.segments_, labels), len(self.segments_) - 1)
        return np.where(self.segments_[pos] == labels, pos, -1).astype(np.int64)

    def _candidates(self, data, rows, history, kind, n, allowed):  # type: ignore[no-untyped-def]
        codes = self._codes(data, rows)
        parts = []
        for code in np.unique(codes):
            local = np.flatnonzero(codes == code)
            if code >= 0:
                pop, ranking = self.popularity_[code], self.rankings_[code]
            else:
                pop, ranking = self.overall_, self.overall_ranking_
            sub = history[local]
            if kind == REPEAT:
                c = _history_candidates(sub, pop)
            else:
                c = _ranked_candidates(ranking[allowed[ranking] & (pop[ranking] > 0)], pop, sub, n)
            parts.append(Candidates(local[c.row], c.item, c.score, c.related))
        return _concat(parts)


def _labels(segments: NDArray[Any]) -> NDArray[np.str_]:
    """Segment labels as text, "" for a customer without one."""
    return np.array(["" if s is None or s != s else str(s) for s in segments], dtype=str)


def _concat(parts: list[Candidates]) -> Candidates:
    if not parts:
        return Candidates.empty()
    fields = ("row", "item", "score", "related")
    return Candidates(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


class CoOccurrence(Recommender):
    """Item-item: a product scores the sum, over the customer's products, of purchase weight ×
    similarity (co-bought share, from `engine.behaviour.item_neighbours`). The product that
    contributes most is the "often bought with" product shown as the reason."""

    name = "cooccurrence"
    reason = Reason.BOUGHT_WITH

    def fit(self, data: Interactions, neighbours: pd.DataFrame | None = None) -> Self:
        """`neighbours`: rows (product_id, neighbour_id, similarity); pairs naming products
        outside `data` are ignored."""
        if neighbours is None:
            raise DataError("co-occurrence needs the item neighbours (engine.behaviour)")
        self.n_products_ = len(data.products)
        ids = data.products.astype(str)
        a = np.searchsorted(ids, neighbours["product_id"].astype(str).to_numpy())
        b = np.searchsorted(ids, neighbours["neighbour_id"].astype(str).to_numpy())
        a, b = np.minimum(a, len(ids) - 1), np.minimum(b, len(ids) - 1)
        ok = (ids[a] == neighbours["product_id"].astype(str).to_numpy()) & (
            ids[b] == neighbours["neighbour_id"].astype(str).to_numpy()
        ) if len(ids) else np.zeros(len(neighbours), bool)  # fmt: skip
        sim = neighbours["similarity"].to_numpy(dtype=np.float64)
        self.similarity_ = sp.csr_matrix(
            (sim[ok], (a[ok], b[ok])), shape=(self.n_products_, self.n_products_)
        )
        self.similarity_.sum_duplicates()
        return self

    def _candidates(self, data, rows, history, kind, n, allowed):  # type: ignore[no-untyped-def]
        s = self.similarity_
        coo = history.tocoo()
        fan = np.diff(s.indptr)[coo.col]
        row = np.repeat(coo.row.astype(np.int64), fan)
        source = np.repeat(coo.col.astype(np.int64), fan)
        weight = np.repeat(coo.data, fan)
        starts = np.repeat(s.indptr[coo.col], fan)
        offset = np.arange(len(row)) - np.repeat(np.cumsum(fan) - fan, fan)
        item = s.indices[starts + offset].astype(np.int64)
        contribution = weight * s.data[starts + offset]
        keys = row * history.shape[1] + item
        order = np.lexsort((-contribution, keys))
        keys, contribution, source = keys[order], contribution[order], source[order]
        first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else keys
        score = np.add.reduceat(contribution, first) if len(keys) else np.zeros(0)
        k = keys[first]
        found = Candidates(k // history.shape[1], k % history.shape[1], score, source[first])
        if kind == NEW:
            return found
        # every owned product is a repeat candidate; one no other product points to scores 0
        owned = _history_candidates(history)
        unseen = ~_in_sorted(owned.row * history.shape[1] + owned.item, k)
        zero = np.zeros(int(unseen.sum()))
        return _concat(
            [found, Candidates(owned.row[unseen], owned.item[unseen], zero, owned.related[unseen])]
        )


class ALS(Recommender):
    """Implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008) fitted with the
    `implicit` package; confidence = 1 + alpha × weight. Only the factors are kept, so a fitted
    model pickles without the library's objects."""

    name = "als"
    reason = Reason.CUSTOMERS_LIKE_YOU

    def __init__(
        self,
        factors: int = 32,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        random_state: int = 0,
        num_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads

    def fit(self, data: Interactions) -> Self:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        if data.weights.nnz == 0:
            raise DataError("ALS needs at least one purchase")
        # implicit runs its own threads; a multi-threaded BLAS underneath only oversubscribes
        # (implicit checks, and warns, when the model is made).
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.random_state,
                num_threads=self.num_threads,
            )
            model.fit(data.weights.astype(np.float32), show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors)
        self.item_factors_ = np.asarray(model.item_factors)
        self.n_products_ = len(data.products)
        return self

    def _candidates(self, data, rows, history, kind, n, allowed):  # type: ignore[no-untyped-def]
        users = self.user_factors_[rows]
        if kind == REPEAT:
            coo = history.tocoo()
            score = np.einsum("ij,ij->i", users[coo.row], self.item_factors_[coo.col])
            return Candidates(
                coo.row.astype(np.int64), coo.col.astype(np.int64), score.astype(np.float64),
                np.full(coo.nnz, -1, np.int64),
            )  # fmt: skip
        m = min(n, len(allowed))
        if m == 0:
            return Candidates.empty()
        scores = users @ self.item_factors_.T  # one batch: BATCH_CELLS cells at most
        scores[:, ~allowed] = -np.inf
        hist = history.tocoo()
        scores[hist.row, hist.col] = -np.inf
        best = np.argpartition(scores, -m, axis=1)[:, -m:]
        row = np.repeat(np.arange(len(rows)), m)
        item = best.ravel().astype(np.int64)
        score = scores[row, item].astype(np.float64)
        ok = np.isfinite(score)
        return Candidates(row[ok], item[ok], score[ok], np.full(int(ok.sum()), -1, np.int64))


MODELS: dict[str, type[Recommender]] = {
    m.name: m for m in (BuyAgain, Popularity, SegmentPopularity, CoOccurrence, ALS)
}
"""Recommenders by name, baselines first (they win ties in model selection)."""
