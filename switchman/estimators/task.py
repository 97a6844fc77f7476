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

from typing import Any

import numpy as np
from scipy import sparse

from switchman.estimators.base import Features, QualityEstimator, shrink, sub_state
from switchman.estimators.knn import KNNEstimator

#: Weight of the embedding classifier in the log-linear blend with the lexical one; the
#: lexical classifier names subjects better, the embedding one generalises to new wording.
_EMBEDDING_SHARE = 0.4


def _tfidf(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    """Sublinear tf x idf, rows L2-normalised (the usual tf-idf, with a stored idf)."""
    weighted = counts.astype(np.float32, copy=True)
    weighted.data = 1.0 + np.log(weighted.data)
    weighted = weighted.multiply(idf[None, :]).tocsr()
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    return sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ weighted


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _per_class(classifier: Any) -> tuple[np.ndarray, np.ndarray]:
    """(features, n_classes) weights and (n_classes,) intercepts, also for 2 classes."""
    coef = np.ascontiguousarray(classifier.coef_.T, dtype=np.float32)  # fast sparse @ dense
    intercept = np.asarray(classifier.intercept_, dtype=np.float32)
    if coef.shape[1] == 1:  # sklearn keeps a single column for a binary problem
        coef, intercept = np.hstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2,
                                                                       intercept[0] / 2])
    return coef, intercept.astype(np.float32)


class TaskMixtureEstimator(QualityEstimator):
    kind = "task"

    def __init__(self, c: float = 30.0, shrinkage: float = 5.0, max_iter: int = 300,
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
            self.idf_ = np.zeros(0, dtype=np.float32)
            return self._fit_local(features, quality)
        from sklearn.linear_model import LogisticRegression  # fitting only

        names, codes = np.unique(labels, return_inverse=True)
        classifier = LogisticRegression(C=self.c, max_iter=self.max_iter)
        classifier.fit(features.dense(), codes)
        self.coef_, self.intercept_ = _per_class(classifier)  # (d + 1, n_tasks), (n_tasks,)
        self._fit_lexical(features, codes)
        counts = np.bincount(codes, minlength=len(names)).astype(float)
        sums = np.zeros((len(names), quality.shape[1]))
        np.add.at(sums, codes, quality)
        self.task_quality_ = shrink(sums, counts[:, None], prior[None, :], self.shrinkage)
        return self._fit_local(features, quality)

    def _fit_local(self, features: Features, quality: np.ndarray) -> TaskMixtureEstimator:
        self.local_ = self._local()
        if self.local_ is not None:
            residual = quality - self._task_predict(features)
            self.local_.fit(features, residual)
            self.local_.prior_ = np.zeros_like(self.local_.prior_)  # shrink toward the task
        return self

    def _fit_lexical(self, features: Features, codes: np.ndarray) -> None:
        """A second task classifier on tf-idf of hashed word n-grams (when present)."""
        from sklearn.linear_model import SGDClassifier  # fitting only

        self.idf_ = np.zeros(0, dtype=np.float32)
        if features.lexical is None:
            return
        counts = features.lexical
        doc_freq = np.bincount(counts.indices, minlength=counts.shape[1])
        self.idf_ = (np.log((1 + counts.shape[0]) / (1 + doc_freq)) + 1).astype(np.float32)
        classifier = SGDClassifier(loss="log_loss", alpha=3e-6, max_iter=30, tol=None,
                                   random_state=0)
        classifier.fit(_tfidf(counts, self.idf_), codes)
        self.lexical_coef_, self.lexical_intercept_ = _per_class(classifier)

    def task_probabilities(self, features: Features) -> np.ndarray:
        """P(task | prompt): the embedding and lexical classifiers' geometric blend."""
        log_probs = _log_softmax(features.dense() @ self.coef_ + self.intercept_)
        if self.idf_.size and features.lexical is not None:
            scores = _tfidf(features.lexical, self.idf_) @ self.lexical_coef_
            # one-vs-rest logistic scores -> normalised class probabilities, as sklearn does
            ovr = 1.0 / (1.0 + np.exp(-(scores + self.lexical_intercept_)))
            lexical = np.log(ovr / ovr.sum(axis=1, keepdims=True) + 1e-9)
            log_probs = _log_softmax(_EMBEDDING_SHARE * log_probs
                                     + (1 - _EMBEDDING_SHARE) * lexical)
        return np.exp(log_probs)

    def _task_predict(self, features: Features) -> np.ndarray:
        return self.task_probabilities(features) @ self.task_quality_

    def predict(self, features: Features) -> np.ndarray:
        predicted = self._task_predict(features)
        if self.local_ is not None:
            predicted = predicted + self.local_.predict(features)
        return np.clip(predicted, 0.0, 1.0)

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"coef": self.coef_, "intercept": self.intercept_,
                  "task_quality": self.task_quality_, "idf": self.idf_}
        if self.idf_.size:
            arrays.update(lexical_coef=self.lexical_coef_,
                          lexical_intercept=self.lexical_intercept_)
        if self.local_ is not None:
            arrays.update({f"local.{k}": v for k, v in self.local_.state_arrays().items()})
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> TaskMixtureEstimator:
        self.coef_ = arrays["coef"]
        self.intercept_ = arrays["intercept"]
        self.task_quality_ = arrays["task_quality"]
        self.idf_ = arrays["idf"]
        if self.idf_.size:
            self.lexical_coef_ = np.ascontiguousarray(arrays["lexical_coef"])
            self.lexical_intercept_ = arrays["lexical_intercept"]
        self.local_ = self._local()
        if self.local_ is not None:
            self.local_.load_state(sub_state(arrays, "local."))
        return self
