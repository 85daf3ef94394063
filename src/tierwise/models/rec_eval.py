"""Ranking metrics for recommendations on a time split, repeat and new items apart.

A customer's relevant items are the products bought in the test period; those already bought in
training are *repeat* items, the others *new*. Each kind is scored over the customers with at
least one relevant item of that kind, so a model cannot look good on new items by recommending
what the customer buys anyway. Customers without recommendations count as zero, not as absent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tierwise.models.recommend import NEW, REPEAT

METRICS = ("precision", "recall", "ndcg", "hit_rate")


def split_relevant(history: pd.DataFrame, test: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Distinct test (customer_id, product_id) pairs, as repeat (in `history`) and new items."""
    pairs = test[["customer_id", "product_id"]].drop_duplicates()
    seen = history[["customer_id", "product_id"]].drop_duplicates().assign(_seen=True)
    marked = pairs.merge(seen, on=["customer_id", "product_id"], how="left")
    owned = marked["_seen"].notna().to_numpy()
    return {REPEAT: pairs[owned], NEW: pairs[~owned]}


def ranking_metrics(
    recommended: pd.DataFrame, relevant: pd.DataFrame, *, k: int
) -> dict[str, float | int | None]:
    """precision@k, recall@k, NDCG@k (binary gains) and hit rate, averaged over the customers
    in `relevant`; `recommended` has customer_id, product_id, rank (1 = best).

    recall divides by all of a customer's relevant items, NDCG by the ideal DCG of
    min(k, relevant) hits. Metrics are None when no customer has a relevant item.
    """
    truth = relevant[["customer_id", "product_id"]].drop_duplicates()
    customers = truth["customer_id"].unique()
    n = len(customers)
    if n == 0:
        return dict.fromkeys(METRICS, None) | {"customers": 0}
    top = recommended.loc[recommended["rank"] <= k, ["customer_id", "product_id", "rank"]]
    hits = top.merge(truth, on=["customer_id", "product_id"])
    per = pd.DataFrame(index=pd.Index(customers, name="customer_id"))
    per["relevant"] = truth.groupby("customer_id").size()
    per["hits"] = hits.groupby("customer_id").size()
    gains = hits.assign(gain=1.0 / np.log2(hits["rank"].to_numpy(dtype=np.float64) + 1.0))
    per["dcg"] = gains.groupby("customer_id")["gain"].sum()
    per = per.fillna(0.0)
    discounts = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    ideal = discounts[np.minimum(per["relevant"].to_numpy(dtype=np.int64), k) - 1]
    return {
        "precision": float((per["hits"] / k).mean()),
        "recall": float((per["hits"] / per["relevant"]).mean()),
        "ndcg": float((per["dcg"].to_numpy() / ideal).mean()),
        "hit_rate": float((per["hits"] > 0).mean()),
        "customers": n,
    }
