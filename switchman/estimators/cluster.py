"""Cluster-level quality: k-means over prompt embeddings, per-cluster means shrunk to the prior.

Prompts of one kind (a benchmark, a subject, a style) land together, so a cluster's
observed per-model quality is a cheap, robust summary of "what this model is good at".
"""

from __future__ import annotations

import numpy as np

from switchman.estimators.base import QualityEstimator, RoutingCosts, shrink
from switchman.features import Features


class ClusterEstimator(QualityEstimator):
    kind = "cluster"

    def __init__(self, n_clusters: int = 32, shrinkage: float = 5.0, seed: int = 0) -> None:
        self.n_clusters = n_clusters
        self.shrinkage = shrinkage
        self.seed = seed

    def fit(self, features: Features, quality: np.ndarray,
            costs: RoutingCosts | None = None) -> ClusterEstimator:
        from sklearn.cluster import KMeans  # fitting only: serving needs numpy alone

        k = max(1, min(self.n_clusters, len(features) // 5))
        kmeans = KMeans(n_clusters=k, n_init=1, random_state=self.seed).fit(features.embeddings)
        labels = kmeans.labels_
        prior = quality.mean(axis=0)
        counts = np.bincount(labels, minlength=k).astype(float)
        sums = np.zeros((k, quality.shape[1]))
        np.add.at(sums, labels, quality)
        self._set_centroids(kmeans.cluster_centers_.astype(np.float32))
        self.cluster_quality_ = shrink(sums, counts[:, None], prior[None, :], self.shrinkage)
        return self

    def _set_centroids(self, centroids: np.ndarray) -> None:
        self.centroids_ = centroids
        self.squared_norms_ = (centroids**2).sum(axis=1)  # the same for every prompt

    def predict(self, features: Features) -> np.ndarray:
        # argmin of squared distance = argmax of (2 x.c - |c|^2) for any x
        score = 2.0 * features.embeddings @ self.centroids_.T - self.squared_norms_
        return self.cluster_quality_[np.argmax(score, axis=1)]

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"centroids": self.centroids_, "cluster_quality": self.cluster_quality_}

    def load_state(self, arrays: dict[str, np.ndarray]) -> ClusterEstimator:
        self._set_centroids(arrays["centroids"])
        self.cluster_quality_ = arrays["cluster_quality"]
        return self
