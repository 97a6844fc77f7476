"""k-nearest neighbours: the observed outcomes of the most similar training prompts.

Neighbours are weighted by cosine similarity (exp((sim - 1) / temperature), so a near
duplicate counts fully and a loose match little) and the weighted mean is shrunk toward the
per-model prior in proportion to how little neighbour weight there is.
"""

from __future__ import annotations

import numpy as np

from switchman.estimators.base import QualityEstimator, RoutingCosts, shrink
from switchman.features import SHARED_SEARCH_ROWS, Features

_CHUNK = 1024  # query rows per similarity block: bounds memory on large batches


class KNNEstimator(QualityEstimator):
    kind = "knn"

    def __init__(self, k: int = 20, temperature: float = 0.1, shrinkage: float = 1.0) -> None:
        self.k = k
        self.temperature = temperature
        self.shrinkage = shrinkage

    def fit(self, features: Features, quality: np.ndarray,
            costs: RoutingCosts | None = None) -> KNNEstimator:
        self.train_embeddings_ = features.reference_embeddings
        self.train_quality_ = quality.astype(np.float32)
        self.prior_ = quality.mean(axis=0)
        return self

    def predict(self, features: Features) -> np.ndarray:
        k = min(self.k, self.train_embeddings_.shape[0])
        if len(features) == 1:
            return self._predict_one(features, k)
        if len(features) <= SHARED_SEARCH_ROWS:  # a gateway's loop turn: one search per row,
            # shared with the other families (argpartition of a (few, n) block: ~24 us a row)
            return self._from_neighbours(*features.neighbours(self.train_embeddings_, k))
        n = len(features)
        out = np.empty((n, self.train_quality_.shape[1]))
        for start in range(0, n, _CHUNK):
            sims = features.similarity(self.train_embeddings_, start, start + _CHUNK)
            if k < sims.shape[1]:  # increasing within a row: summed in the order top_k gives
                idx = np.sort(np.argpartition(-sims, k - 1, axis=1)[:, :k], axis=1)
            else:
                idx = np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
            out[start : start + _CHUNK] = self._from_neighbours(
                idx, np.take_along_axis(sims, idx, axis=1))
        return out

    def _predict_one(self, features: Features, k: int) -> np.ndarray:
        """``predict`` for one prompt, a server's case: its neighbours from
        ``Features.neighbours`` (shared with other searches of the same training prompts),
        and no ``take_along_axis``, broadcast index or batch einsum, whose set-up costs more
        than the arithmetic here. Neighbours come in increasing order, as the batch's rows
        are sorted, and the sum is einsum's in that order: the floats are equal."""
        idx, top = features.neighbours(self.train_embeddings_, k)
        weights = np.exp((top[0] - 1.0) / self.temperature)
        totals = np.einsum("k,km->m", weights, self.train_quality_.take(idx[0], axis=0))
        return shrink(totals, weights.sum(), self.prior_, self.shrinkage)[None, :]

    def _from_neighbours(self, idx: np.ndarray, top: np.ndarray) -> np.ndarray:
        """Shrunk weighted means of the neighbours ``idx`` (q, k) at similarities ``top``."""
        weights = np.exp((top - 1.0) / self.temperature)
        totals = np.einsum("qk,qkm->qm", weights, self.train_quality_[idx])
        return shrink(totals, weights.sum(axis=1, keepdims=True), self.prior_[None, :],
                      self.shrinkage)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {
            "train_embeddings": self.train_embeddings_,
            "train_quality": self.train_quality_,
            "prior": self.prior_,
        }

    def load_state(self, arrays: dict[str, np.ndarray]) -> KNNEstimator:
        self.train_embeddings_ = arrays["train_embeddings"]
        self.train_quality_ = arrays["train_quality"]
        self.prior_ = arrays["prior"]
        return self
