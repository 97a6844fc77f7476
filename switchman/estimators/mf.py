"""Matrix factorisation for N models: quality = sigmoid((x W) . v_m + b_m).

RouteLLM's MF router scores two models with a bilinear form; here the prompt is projected
into a small latent space (W) shared by all models, and each model is a vector in it, so
what is learned about one model's strengths informs the others. Trained full-batch with
Adam on the cross-entropy to the (possibly fractional) outcomes, in numpy.
"""

from __future__ import annotations

import numpy as np

from switchman.estimators.base import QualityEstimator, RoutingCosts
from switchman.features import Features


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


class _Adam:
    """Plain Adam over a list of arrays, updated in place."""

    def __init__(self, params: list[np.ndarray], lr: float) -> None:
        self.params, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads: list[np.ndarray], b1: float = 0.9, b2: float = 0.999) -> None:
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            m_hat = m / (1 - b1**self.t)
            v_hat = v / (1 - b2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


class MatrixFactorizationEstimator(QualityEstimator):
    kind = "mf"

    def __init__(self, dim: int = 32, epochs: int = 250, learning_rate: float = 0.01,
                 l2: float = 1e-4, seed: int = 0) -> None:
        self.dim = dim
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.l2 = l2
        self.seed = seed

    def fit(self, features: Features, quality: np.ndarray,
            costs: RoutingCosts | None = None) -> MatrixFactorizationEstimator:
        x = features.dense().astype(np.float32)
        y = quality.astype(np.float32)
        n, d = x.shape
        m = y.shape[1]
        rng = np.random.default_rng(self.seed)
        prior = np.clip(y.mean(axis=0), 1e-3, 1 - 1e-3)
        w = (rng.standard_normal((d, self.dim)) / np.sqrt(d)).astype(np.float32)
        v = (rng.standard_normal((m, self.dim)) * 0.1).astype(np.float32)
        b = np.log(prior / (1 - prior)).astype(np.float32)
        adam = _Adam([w, v, b], self.learning_rate)
        scale = np.float32(1.0 / (n * m))
        for _ in range(self.epochs):
            h = x @ w
            grad_z = (_sigmoid(h @ v.T + b) - y) * scale
            grad_h = grad_z @ v
            adam.step([
                x.T @ grad_h + self.l2 * w,
                grad_z.T @ h + self.l2 * v,
                grad_z.sum(axis=0),
            ])
        self.projection_, self.model_vectors_, self.bias_ = w, v, b
        return self

    def predict(self, features: Features) -> np.ndarray:
        h = features.dense().astype(np.float32) @ self.projection_
        return _sigmoid(h @ self.model_vectors_.T + self.bias_).astype(np.float64)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"projection": self.projection_, "model_vectors": self.model_vectors_,
                "bias": self.bias_}

    def load_state(self, arrays: dict[str, np.ndarray]) -> MatrixFactorizationEstimator:
        self.projection_ = arrays["projection"]
        self.model_vectors_ = arrays["model_vectors"]
        self.bias_ = arrays["bias"]
        return self
