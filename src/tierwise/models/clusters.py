"""Behaviour clusters: k-means on standardised behaviour features, k chosen by silhouette.

Counts and amounts are heavy-tailed, so they are log-transformed before standardising; shares
are used as they are. k-means is fitted on a bounded sample for each k in a range, and the k
with the best silhouette (itself measured on a smaller sample: it is quadratic) wins. Clusters
are numbered by size, largest first, and each is described by the features on which its mean
differs most from everyone's, in standard deviations — which is what a marketer reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from tierwise.core.errors import DataError
from tierwise.models._base import NotFittedError

LOG_FEATURES = frozenset(
    {"orders", "avg_order_value", "recency_days", "tenure_days", "basket_size", "categories",
     "views", "carts"}
)  # fmt: skip
"""Features log-transformed (log1p of the value, negatives clipped to 0) before scaling."""


@dataclass(frozen=True)
class Distinction:
    """A feature on which a cluster stands out: its mean in standard deviations from
    everyone's (`z`), and the raw means of the cluster and of everyone."""

    feature: str
    z: float
    cluster_mean: float
    overall_mean: float


@dataclass(frozen=True)
class ClusterProfile:
    cluster: str
    customers: int
    """Members in the fitting sample (the run recounts over everyone)."""
    share: float
    label: str
    """E.g. "high evening_share · low orders": the top distinguishing features."""
    distinctions: tuple[Distinction, ...]


class BehaviourClusters:
    """`fit(features)` on a frame of numeric behaviour features (no id column), then
    `predict(features)` names each row's cluster ("c1" is the largest)."""

    def __init__(
        self,
        k_min: int = 2,
        k_max: int = 8,
        sample_size: int = 20_000,
        silhouette_size: int = 4_000,
        describe_top: int = 3,
        random_state: int = 0,
    ) -> None:
        self.k_min = k_min
        self.k_max = k_max
        self.sample_size = sample_size
        self.silhouette_size = silhouette_size
        self.describe_top = describe_top
        self.random_state = random_state

    def _prepare(self, frame: pd.DataFrame) -> np.ndarray:
        """Missing values filled with the fit sample's medians, heavy tails logged."""
        x = frame[self.features_].astype(np.float64)
        x = x.fillna(pd.Series(self.fill_, index=self.features_))
        for c in self.features_:
            if c in LOG_FEATURES:
                x[c] = np.log1p(x[c].clip(lower=0))
        return x.to_numpy()

    def _transform(self, frame: pd.DataFrame) -> np.ndarray:
        return (self._prepare(frame) - self.mean_) / self.scale_

    def fit(self, frame: pd.DataFrame) -> Self:
        if len(frame) < self.k_min + 1:
            raise DataError(f"behaviour clusters need more than {self.k_min} customers")
        rng = np.random.default_rng(self.random_state)
        sample = frame.iloc[rng.permutation(len(frame))[: self.sample_size]]
        self.features_ = list(frame.columns)
        self.fill_ = sample.astype(np.float64).median().fillna(0.0).to_numpy()
        raw = self._prepare(sample)
        self.mean_ = raw.mean(axis=0)
        std = raw.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        x = (raw - self.mean_) / self.scale_
        # k is chosen on a smaller sample (silhouettes are quadratic, and k-means per k adds
        # up); the chosen k is then fitted on the whole sample.
        judged = x[: self.silhouette_size]
        self.silhouettes_: dict[int, float] = {}
        for k in range(self.k_min, min(self.k_max, len(judged) - 1) + 1):
            labels = KMeans(n_clusters=k, n_init=2, random_state=self.random_state).fit_predict(
                judged
            )
            if len(np.unique(labels)) > 1:
                self.silhouettes_[k] = float(silhouette_score(judged, labels))
        if not self.silhouettes_:
            raise DataError("behaviour features do not separate into clusters")
        self.k_ = max(self.silhouettes_, key=lambda k: (self.silhouettes_[k], -k))
        km = KMeans(n_clusters=self.k_, n_init=3, random_state=self.random_state).fit(x)
        sizes = np.bincount(km.labels_, minlength=self.k_)
        by_size = np.lexsort((np.arange(self.k_), -sizes))
        self.centers_ = km.cluster_centers_[by_size]
        self.profiles_ = self._describe(sample, x)
        return self

    def _assign(self, x: np.ndarray) -> np.ndarray:
        distances = ((x[:, None, :] - self.centers_[None, :, :]) ** 2).sum(axis=2)
        return distances.argmin(axis=1)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if not hasattr(self, "centers_"):
            raise NotFittedError("BehaviourClusters is not fitted")
        if len(frame) == 0:
            return np.array([], dtype=object)
        return np.array([f"c{i + 1}" for i in self._assign(self._transform(frame))], dtype=object)

    def _describe(self, sample: pd.DataFrame, x: np.ndarray) -> tuple[ClusterProfile, ...]:
        labels = self._assign(x)
        raw = sample[self.features_].astype(np.float64)
        overall = raw.mean().to_numpy()
        out = []
        for c in range(self.k_):
            members = labels == c
            z = x[members].mean(axis=0) if members.any() else np.zeros(len(self.features_))
            means = raw[members].mean().to_numpy() if members.any() else overall
            order = np.argsort(-np.abs(z), kind="stable")[: self.describe_top]
            distinctions = tuple(
                Distinction(self.features_[i], float(z[i]), float(means[i]), float(overall[i]))
                for i in order
            )
            label = " · ".join(f"{'high' if d.z > 0 else 'low'} {d.feature}" for d in distinctions)
            n = int(members.sum())
            out.append(ClusterProfile(f"c{c + 1}", n, n / len(x), label, distinctions))
        return tuple(out)
