"""What the online learner sees of one request: a small prompt vector and the router's estimates.

The learner corrects the offline router, so its context is what the router already computed
for the request, never anything new: the prompt's embedding, projected to a few dimensions by
a fixed random Gaussian matrix (Johnson-Lindenstrauss: distances are roughly kept, and a
16-dimensional ridge regression costs microseconds where the 384-dimensional one would not),
plus the router's expected quality and cost of every model. A :class:`Context` is plain
data, so a caller that gets feedback long after the decision can keep it (or its
``to_state()``) with the decision and hand it back to ``OnlineLearner.update``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Context:
    """One request as the learner sees it.

    ``prompt`` is the projected embedding (k,); ``quality`` and ``cost`` are the offline
    router's per-model estimates, in the order of ``models``.
    """

    models: tuple[str, ...]
    prompt: np.ndarray
    quality: np.ndarray
    cost: np.ndarray

    def to_state(self) -> dict[str, Any]:
        """JSON-like data (lists of floats) to keep with a decision until its feedback."""
        return {"models": list(self.models), "prompt": self.prompt.tolist(),
                "quality": self.quality.tolist(), "cost": self.cost.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Context:
        return cls(tuple(state["models"]), np.asarray(state["prompt"], dtype=np.float64),
                   np.asarray(state["quality"], dtype=np.float64),
                   np.asarray(state["cost"], dtype=np.float64))


class PromptProjection:
    """A fixed random projection of L2-normalised embeddings to ``dim`` values.

    The matrix is drawn once from ``seed`` and then kept as data (``to_state``): replicas and
    restarts must project identically, and NumPy does not promise its random streams stay
    the same across versions.
    """

    def __init__(self, input_dim: int, dim: int, seed: int = 0,
                 matrix: np.ndarray | None = None) -> None:
        if matrix is None:
            # N(0, 1/dim) entries keep a unit vector's projection near unit norm
            matrix = np.random.default_rng(seed).standard_normal((input_dim, dim)) / np.sqrt(dim)
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        if self.matrix.shape != (input_dim, dim):
            raise ValueError(f"projection matrix must be {(input_dim, dim)}, "
                             f"got {self.matrix.shape}")

    @property
    def input_dim(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """(dim,) for one embedding, (n, dim) for a batch."""
        return np.asarray(embeddings, dtype=np.float64) @ self.matrix

    def to_state(self) -> list[list[float]]:
        return self.matrix.tolist()

    @classmethod
    def from_state(cls, state: Sequence[Sequence[float]]) -> PromptProjection:
        matrix = np.asarray(state, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError("a projection state is a list of rows")
        return cls(matrix.shape[0], matrix.shape[1], matrix=matrix)
