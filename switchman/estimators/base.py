"""The estimator contract, in scikit-learn's style.

Hyper-parameters live in ``__init__``; ``fit`` sets learned state in attributes ending in
``_``; ``predict`` is pure. Estimators see features, not text: the router owns the encoder,
so one encoder run serves every estimator and a saved router can be reloaded without refit.
State is exported as JSON-able parameters plus named numpy arrays, so a saved router holds
no pickled code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Features:
    """What estimators learn from: one row per prompt."""

    embeddings: np.ndarray  # (n, d) float32, L2-normalised
    log_chars: np.ndarray  # (n,) log1p of the prompt's character count
    #: Training-only labels (the outcomes table's ``task``); never present when routing.
    tasks: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def rows(self, index: np.ndarray) -> Features:
        tasks = None if self.tasks is None else self.tasks[index]
        return Features(self.embeddings[index], self.log_chars[index], tasks)

    def dense(self) -> np.ndarray:
        """Embedding plus a standardised length column, for the linear families."""
        length = (self.log_chars - 6.0) / 1.5  # ~zero-mean, unit-scale for prompts of 50-5000 chars
        return np.hstack([self.embeddings, length[:, None].astype(self.embeddings.dtype)])


class QualityEstimator(ABC):
    """Predicts each model's expected quality in [0, 1] for each prompt."""

    #: Registry key; also what ``switchman train --router NAME`` accepts.
    kind: ClassVar[str]

    @abstractmethod
    def fit(self, features: Features, quality: np.ndarray,
            cost: np.ndarray | None = None) -> QualityEstimator:
        """Learn from ``quality`` (n_prompts, n_models) observed on ``features``.

        ``cost`` (same shape, dollars) is there for estimators that select themselves by
        routing quality on held-out folds; the others ignore it.
        """

    @abstractmethod
    def predict(self, features: Features) -> np.ndarray:
        """Expected quality (n_prompts, n_models), clipped to [0, 1]."""

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters, exactly the ``__init__`` arguments."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    @abstractmethod
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Learned state as named arrays (what ``fit`` set)."""

    @abstractmethod
    def load_state(self, arrays: dict[str, np.ndarray]) -> QualityEstimator:
        """Restore learned state exported by ``state_arrays``."""


def shrink(total: np.ndarray, weight: np.ndarray, prior: np.ndarray, strength: float) -> np.ndarray:
    """Weighted mean pulled toward ``prior``: (sum w q + s prior) / (sum w + s).

    Small groups (few neighbours, a tiny cluster) then say little beyond the prior, which is
    what keeps local estimators from chasing noise in binary outcomes.
    """
    return (total + strength * prior) / (weight + strength)
