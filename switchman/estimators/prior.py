"""Per-model prior: every prompt gets each model's mean training quality.

The floor every other estimator must beat, and the target that local estimators shrink to.
"""

from __future__ import annotations

import numpy as np

from switchman.estimators.base import QualityEstimator, RoutingCosts
from switchman.features import Features


class PriorEstimator(QualityEstimator):
    kind = "prior"

    def fit(self, features: Features, quality: np.ndarray,
            costs: RoutingCosts | None = None) -> PriorEstimator:
        self.mean_ = quality.mean(axis=0)
        return self

    def predict(self, features: Features) -> np.ndarray:
        return np.repeat(self.mean_[None, :], len(features), axis=0)  # C, unlike broadcast_to

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_}

    def load_state(self, arrays: dict[str, np.ndarray]) -> PriorEstimator:
        self.mean_ = arrays["mean"]
        return self
