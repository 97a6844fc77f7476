"""The one value every estimator returns and every policy consumes.

Keeping it a plain container of arrays is what lets any estimator work with any policy
(DESIGN: the estimator only predicts; the policy decides).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimates:
    """Per prompt and per model: expected quality in [0, 1] and expected dollar cost.

    ``quality`` and ``cost`` have shape (n_prompts, n_models); column j is ``models[j]``.
    ``quality_std`` is the predictive uncertainty where an estimator has one.
    """

    models: tuple[str, ...]
    quality: np.ndarray
    cost: np.ndarray
    quality_std: np.ndarray | None = None

    def __post_init__(self) -> None:
        shape = (self.quality.shape[0], len(self.models))
        if self.quality.shape != shape or self.cost.shape != shape:
            raise ValueError(
                f"estimates must be (n_prompts, n_models)={shape}; "
                f"got quality {self.quality.shape}, cost {self.cost.shape}"
            )

    @property
    def n_prompts(self) -> int:
        return int(self.quality.shape[0])

    def select_models(self, models: list[str] | tuple[str, ...]) -> Estimates:
        """The same estimates restricted to (and ordered as) ``models``."""
        index = [self.models.index(m) for m in models]
        std = None if self.quality_std is None else self.quality_std[:, index]
        return Estimates(tuple(models), self.quality[:, index], self.cost[:, index], std)

    def rows(self, rows: np.ndarray | slice) -> Estimates:
        std = None if self.quality_std is None else self.quality_std[rows]
        return Estimates(self.models, self.quality[rows], self.cost[rows], std)
