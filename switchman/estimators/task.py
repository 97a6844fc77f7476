"""Task mixture: infer the prompt's task from its text, then use that task's track record.

Training tables label each prompt with its benchmark or subject (``task``). A router told
the task can use per-task mean quality, which is hard to beat; this estimator earns the
same structure from the prompt alone, by a classifier of task given the text
(``TaskClassifier``), and predicts sum_t P(t | prompt) x mean quality of each model on t
(shrunk toward the overall mean for small tasks). Without task labels it reduces to the
per-model prior.

With ``local_k`` > 0, the neighbours' deviations from their task's mean are added on top
(a k-NN on residuals): the task says what is typical, the neighbours what is particular
about this kind of prompt within it.
"""

from __future__ import annotations

import numpy as np

from switchman.estimators.base import QualityEstimator, RoutingCosts, clip_unit, shrink, sub_state
from switchman.estimators.knn import KNNEstimator
from switchman.features import Features
from switchman.features.task_classifier import task_totals


class TaskMixtureEstimator(QualityEstimator):
    kind = "task"

    def __init__(self, shrinkage: float = 5.0, local_k: int = 0,
                 local_shrinkage: float = 3.0) -> None:
        self.shrinkage = shrinkage
        self.local_k = local_k
        self.local_shrinkage = local_shrinkage

    def reads_tasks(self) -> bool:
        return True

    def _local(self) -> KNNEstimator | None:
        if self.local_k <= 0:
            return None
        return KNNEstimator(k=self.local_k, shrinkage=self.local_shrinkage)

    def fit(self, features: Features, quality: np.ndarray,
            costs: RoutingCosts | None = None) -> TaskMixtureEstimator:
        prior = quality.mean(axis=0)
        if features.task_ids is None or features.task_probs is None:
            self.task_quality_ = prior[None, :]
            return self._fit_local(features, quality)
        sums, counts = task_totals(quality, features.task_ids, features.task_probs.shape[1])
        self.task_quality_ = shrink(sums, counts[:, None], prior[None, :], self.shrinkage)
        return self._fit_local(features, quality)

    def _fit_local(self, features: Features, quality: np.ndarray) -> TaskMixtureEstimator:
        self.local_ = self._local()
        if self.local_ is not None:
            residual = quality - self._task_predict(features)
            self.local_.fit(features, residual)
            self.local_.prior_ = np.zeros_like(self.local_.prior_)  # shrink toward the task
        return self

    def _task_predict(self, features: Features) -> np.ndarray:
        if len(self.task_quality_) == 1:  # fitted without tasks: the prior
            return np.repeat(self.task_quality_, len(features), axis=0)
        if features.task_probs is None:
            raise ValueError("the task estimator needs task posteriors (Features.task_probs)")
        return features.task_probs @ self.task_quality_

    def predict(self, features: Features) -> np.ndarray:
        predicted = self._task_predict(features)
        if self.local_ is not None:
            predicted = predicted + self.local_.predict(features)
        return clip_unit(predicted)

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"task_quality": self.task_quality_}
        if self.local_ is not None:
            arrays.update({f"local.{k}": v for k, v in self.local_.state_arrays().items()})
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> TaskMixtureEstimator:
        self.task_quality_ = arrays["task_quality"]
        self.local_ = self._local()
        if self.local_ is not None:
            self.local_.load_state(sub_state(arrays, "local."))
        return self
