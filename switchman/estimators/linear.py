"""Linear model on embeddings: one ridge regression per model, solved jointly.

Ridge on 0/1 (or fractional) outcomes is a linear probability model; its penalty is chosen
per model by efficient leave-one-out cross-validation, so no hand tuning is needed.
"""

from __future__ import annotations

import numpy as np

from switchman.estimators.base import QualityEstimator, RoutingCosts, clip_unit
from switchman.features import Features

_ALPHAS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


class LinearEstimator(QualityEstimator):
    kind = "linear"

    def __init__(self, alphas: tuple[float, ...] = _ALPHAS) -> None:
        self.alphas = tuple(alphas)

    def fit(self, features: Features, quality: np.ndarray,
            costs: RoutingCosts | None = None) -> LinearEstimator:
        from sklearn.linear_model import RidgeCV  # fitting only: serving needs numpy alone

        ridge = RidgeCV(alphas=self.alphas, alpha_per_target=True)
        ridge.fit(features.dense().astype(np.float64), quality)
        self.coef_ = np.atleast_2d(ridge.coef_).T.astype(np.float32)  # (d + 1, n_models)
        self.intercept_ = np.atleast_1d(ridge.intercept_).astype(np.float32)
        return self

    def predict(self, features: Features) -> np.ndarray:
        return clip_unit(features.dense() @ self.coef_ + self.intercept_)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef_, "intercept": self.intercept_}

    def load_state(self, arrays: dict[str, np.ndarray]) -> LinearEstimator:
        self.coef_ = arrays["coef"]
        self.intercept_ = arrays["intercept"]
        return self
