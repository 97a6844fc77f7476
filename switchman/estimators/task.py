"""Task mixture: infer the prompt's task from its text, then use that task's track record.

Training tables label each prompt with its benchmark or subject (``task``). A router told
the task can use per-task mean quality, which is hard to beat; this estimator earns the
same structure from the prompt alone, by a classifier of task given the embedding, and
predicts sum_t P(t | prompt) x mean quality of each model on t (shrunk toward the overall
mean for small tasks). Without task labels it reduces to the per-model prior.

With ``local_k`` > 0, the neighbours' deviations from their task's mean are added on top
(a k-NN on residuals): the task says what is typical, the neighbours what is particular
about this kind of prompt within it.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from switchman.estimators.base import Features, QualityEstimator, shrink
from switchman.estimators.knn import KNNEstimator


class TaskMixtureEstimator(QualityEstimator):
    kind = "task"

    def __init__(self, c: float = 3.0, shrinkage: float = 5.0, max_iter: int = 300,
                 local_k: int = 0, local_shrinkage: float = 3.0) -> None:
        self.c = c
        self.shrinkage = shrinkage
        self.max_iter = max_iter
        self.local_k = local_k
        self.local_shrinkage = local_shrinkage

    def _local(self) -> KNNEstimator | None:
        if self.local_k <= 0:
            return None
        return KNNEstimator(k=self.local_k, shrinkage=self.local_shrinkage)

    def fit(self, features: Features, quality: np.ndarray,
            cost: np.ndarray | None = None) -> TaskMixtureEstimator:
        prior = quality.mean(axis=0)
        labels = features.tasks
        if labels is None or len(np.unique(labels)) < 2:
            self.coef_ = np.zeros((features.dense().shape[1], 1), dtype=np.float32)
            self.intercept_ = np.zeros(1, dtype=np.float32)
            self.task_quality_ = prior[None, :]
            return self._fit_local(features, quality)
        codes, names = np.unique(labels, return_inverse=True)[1], np.unique(labels)
        classifier = LogisticRegression(C=self.c, max_iter=self.max_iter)
        classifier.fit(features.dense(), codes)
        counts = np.bincount(codes, minlength=len(names)).astype(float)
        sums = np.zeros((len(names), quality.shape[1]))
        np.add.at(sums, codes, quality)
        self.coef_ = classifier.coef_.T.astype(np.float32)  # (d + 1, n_tasks)
        self.intercept_ = classifier.intercept_.astype(np.float32)
        if len(names) == 2:  # sklearn keeps one column for a binary problem
            self.coef_ = np.hstack([-self.coef_ / 2, self.coef_ / 2])
            self.intercept_ = np.array([-self.intercept_[0] / 2, self.intercept_[0] / 2],
                                       dtype=np.float32)
        self.task_quality_ = shrink(sums, counts[:, None], prior[None, :], self.shrinkage)
        return self._fit_local(features, quality)

    def _fit_local(self, features: Features, quality: np.ndarray) -> TaskMixtureEstimator:
        self.local_ = self._local()
        if self.local_ is not None:
            residual = quality - self._task_predict(features)
            self.local_.fit(features, residual)
            self.local_.prior_ = np.zeros_like(self.local_.prior_)  # shrink toward the task
        return self

    def task_probabilities(self, features: Features) -> np.ndarray:
        logits = features.dense() @ self.coef_ + self.intercept_
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def _task_predict(self, features: Features) -> np.ndarray:
        return self.task_probabilities(features) @ self.task_quality_

    def predict(self, features: Features) -> np.ndarray:
        predicted = self._task_predict(features)
        if self.local_ is not None:
            predicted = predicted + self.local_.predict(features)
        return np.clip(predicted, 0.0, 1.0)

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"coef": self.coef_, "intercept": self.intercept_,
                  "task_quality": self.task_quality_}
        if self.local_ is not None:
            arrays.update({f"local.{k}": v for k, v in self.local_.state_arrays().items()})
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> TaskMixtureEstimator:
        self.coef_ = arrays["coef"]
        self.intercept_ = arrays["intercept"]
        self.task_quality_ = arrays["task_quality"]
        self.local_ = self._local()
        if self.local_ is not None:
            self.local_.load_state({k[len("local."):]: v for k, v in arrays.items()
                                    if k.startswith("local.")})
        return self
