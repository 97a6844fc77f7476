"""Which task (benchmark, subject) a prompt belongs to, inferred from its text.

Training tables label prompts with a ``task``; routing sees only text. Two linear
classifiers are blended geometrically: a multinomial logistic regression on the sentence
embedding (generalises to new wording) and a one-vs-rest logistic SGD on tf-idf of hashed
word and character n-grams (names subjects sharply; see ``lexical``). Used by the
task-mixture estimator for quality and by the cost model for per-task typical costs. The
router runs it once per prompt and hands the posterior to every estimator in
``Features.task_probs`` (``label_tasks`` for training).
Fitting needs scikit-learn; predicting, numpy and scipy.sparse only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from scipy import sparse

from switchman.features import Features
from switchman.features.lexical import NgramCounts
from switchman.hotpath import compiled as _hotpath

#: Weight of the embedding classifier in the log-linear blend with the lexical one, and
#: the regularisation of each; chosen by 3-fold cross-validation of task accuracy on the
#: training parts of the dev datasets.
_EMBEDDING_SHARE = 0.4
_LEXICAL_ALPHA = 3e-6
#: Passes of the lexical SGD over the training prompts. Held-out accuracy and log-loss are
#: flat from 10 to 30 passes (mmlupro 0.829 vs 0.831, llmrouter 0.938 in both), and this
#: fit is most of a router's training time when there are many tasks (routellm: 66).
_LEXICAL_EPOCHS = 10


def _tfidf(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    """Sublinear tf x idf, rows L2-normalised (the usual tf-idf, with a stored idf).

    Computed on the CSR arrays directly: one prompt per request is the gateway's case, and
    scipy's general element-wise operations cost ~10x more than the arithmetic there.
    """
    lengths = np.diff(counts.indptr)
    weights = (1.0 + np.log(counts.data, dtype=np.float32)) * idf[counts.indices]
    rows = np.repeat(np.arange(len(lengths)), lengths)
    squares = np.bincount(rows, weights=weights * weights, minlength=len(lengths))
    weights /= np.repeat(np.maximum(np.sqrt(squares), 1e-12), lengths).astype(np.float32)
    return sparse.csr_matrix((weights, counts.indices, counts.indptr), shape=counts.shape)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    # the ufuncs' reduce directly: ndarray.max and .sum wrap it in ~2 us of Python each
    shifted = logits - np.maximum.reduce(logits, axis=1, keepdims=True)
    return shifted - np.log(np.add.reduce(np.exp(shifted), axis=1, keepdims=True))


def _per_class(classifier: Any) -> tuple[np.ndarray, np.ndarray]:
    """(features, n_classes) weights and (n_classes,) intercepts, also for 2 classes."""
    coef = np.ascontiguousarray(classifier.coef_.T, dtype=np.float32)  # fast sparse @ dense
    intercept = np.asarray(classifier.intercept_, dtype=np.float32)
    if coef.shape[1] == 1:  # sklearn keeps a single column for a binary problem
        coef, intercept = np.hstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2,
                                                                       intercept[0] / 2])
    return coef, intercept.astype(np.float32)


def task_codes(tasks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(sorted task names, each prompt's index into them), or None with under 2 tasks."""
    if tasks is None:
        return None
    names, codes = np.unique(tasks, return_inverse=True)
    return (names, codes) if len(names) >= 2 else None


def task_totals(values: np.ndarray, codes: np.ndarray,
                n_tasks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per task, the column sums of ``values`` (n_tasks, m) and the row counts (n_tasks,)."""
    sums = np.zeros((n_tasks, values.shape[1]))
    np.add.at(sums, codes, values)
    return sums, np.bincount(codes, minlength=n_tasks).astype(float)


class TaskClassifier:
    """P(task | prompt) over the tasks seen in training (see the module docstring)."""

    def __init__(self, c: float = 30.0, max_iter: int = 300) -> None:
        self.c = c
        self.max_iter = max_iter

    def fit(self, features: Features, codes: np.ndarray) -> TaskClassifier:
        """Learn from task indices ``codes`` (at least two distinct tasks)."""
        from sklearn.linear_model import LogisticRegression, SGDClassifier  # fitting only

        classifier = LogisticRegression(C=self.c, max_iter=self.max_iter)
        classifier.fit(features.dense(), codes)
        self.coef_, self.intercept_ = _per_class(classifier)  # (d + 1, n_tasks), (n_tasks,)
        self.idf_ = np.zeros(0, dtype=np.float32)
        if features.lexical is not None:
            counts = features.lexical.csr()
            doc_freq = np.bincount(counts.indices, minlength=counts.shape[1])
            self.idf_ = (np.log((1 + counts.shape[0]) / (1 + doc_freq)) + 1).astype(np.float32)
            # one-vs-rest classes are fitted in parallel threads (the SGD loop frees the GIL)
            lexical = SGDClassifier(loss="log_loss", alpha=_LEXICAL_ALPHA, max_iter=_LEXICAL_EPOCHS,
                                    tol=None, random_state=0, n_jobs=-1)
            lexical.fit(_tfidf(counts, self.idf_), codes)
            self.lexical_coef_, self.lexical_intercept_ = _per_class(lexical)
        return self

    def reads_lexical(self) -> bool:
        """Whether predicting needs ``Features.lexical``: fitted on n-grams, it blends in
        the lexical classifier (the router builds n-grams only for a classifier that does)."""
        return bool(self.idf_.size)

    def probabilities(self, features: Features) -> np.ndarray:
        """(n, n_tasks): the embedding and lexical classifiers' geometric blend.

        Compiled (``switchman.hotpath``), the product, both soft-maxes and the blend are
        one pass per prompt: for one routed prompt a dozen numpy calls on 14 numbers each
        cost ~30 us more than their arithmetic. One arithmetic for every batch size, so a
        prompt alone and in a training batch get the same probabilities."""
        if self.reads_lexical() and features.lexical is None:
            raise ValueError("this task classifier reads n-grams (Features.lexical); "
                             "make the features with lexical=True")
        if _hotpath is not None and len(features):
            out = np.empty((len(features), self.coef_.shape[1]), dtype=np.float32)
            scores = (self._lexical_scores(features.lexical)
                      if self.reads_lexical() else None)
            _hotpath.task_probabilities(
                np.ascontiguousarray(features.embeddings, dtype=np.float32),
                np.ascontiguousarray(features.log_chars, dtype=np.float64), self.coef_,
                self.intercept_, scores, None if scores is None else self.lexical_intercept_,
                _EMBEDDING_SHARE, out)
            return out
        log_probs = _log_softmax(features.dense() @ self.coef_ + self.intercept_)
        if self.reads_lexical():
            scores = self._lexical_scores(features.lexical)
            # one-vs-rest logistic scores -> normalised class probabilities, as sklearn does
            ovr = 1.0 / (1.0 + np.exp(-(scores + self.lexical_intercept_)))
            lexical = np.log(ovr / np.add.reduce(ovr, axis=1, keepdims=True) + 1e-9)
            log_probs = _log_softmax(_EMBEDDING_SHARE * log_probs
                                     + (1 - _EMBEDDING_SHARE) * lexical)
        return np.exp(log_probs)

    def _lexical_scores(self, counts: NgramCounts) -> np.ndarray:
        """(n, n_tasks) tf-idf @ the lexical weights.

        Compiled (``switchman.hotpath``): one pass over each prompt's n-grams, the weight
        rows fetched ahead of use (they lie far apart in a table of 2**19 rows), and the
        same arithmetic for a prompt alone or in a batch of any size. Otherwise one prompt
        (the gateway's case) skips scipy: its non-zero columns' weight rows are gathered
        with ``np.take`` (several times faster than fancy indexing) and summed, ~4x
        cheaper than building a sparse matrix; a batch goes through scipy."""
        if _hotpath is not None:
            scores = np.empty((len(counts), self.lexical_coef_.shape[1]), dtype=np.float32)
            _hotpath.tfidf_scores(np.asarray(counts.indptr, dtype=np.int64),
                                  np.asarray(counts.indices, dtype=np.int32),
                                  np.asarray(counts.counts, dtype=np.float32), self.idf_,
                                  self.lexical_coef_, scores)
            return scores
        if len(counts) != 1:
            return _tfidf(counts.csr(), self.idf_) @ self.lexical_coef_
        columns = counts.indices
        weights = (1.0 + np.log(counts.counts, dtype=np.float32)) * self.idf_.take(columns)
        weights /= np.float32(max(float(np.sqrt(weights @ weights)), 1e-12))
        return (weights @ self.lexical_coef_.take(columns, axis=0))[None, :]

    def with_posteriors(self, features: Features) -> Features:
        """``features`` with this classifier's P(task | prompt) in ``task_probs``."""
        return replace(features, task_probs=self.probabilities(features))

    def out_of_fold(self, features: Features, codes: np.ndarray, n_folds: int = 3,
                    seed: int = 0) -> np.ndarray:
        """Each training prompt's probabilities from a classifier that did not see it."""
        from sklearn.model_selection import KFold  # fitting only

        n_tasks = int(codes.max()) + 1
        out = np.zeros((len(codes), n_tasks))
        folds = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for train_idx, held_idx in folds.split(codes):
            fold = TaskClassifier(self.c, self.max_iter).fit(features.rows(train_idx),
                                                             codes[train_idx])
            seen = np.unique(codes[train_idx])  # a rare task may be missing from a fold
            out[np.ix_(held_idx, seen)] = fold.probabilities(features.rows(held_idx))
        return out

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"coef": self.coef_, "intercept": self.intercept_, "idf": self.idf_}
        if self.idf_.size:
            arrays.update(lexical_coef=self.lexical_coef_,
                          lexical_intercept=self.lexical_intercept_)
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> TaskClassifier:
        # float32 and C-contiguous, as fitting makes them: the compiled loops read them
        # as they are, so they are made so once here, not per prompt
        weights = {key: np.ascontiguousarray(value, dtype=np.float32)
                   for key, value in arrays.items()}
        self.coef_ = weights["coef"]
        self.intercept_ = weights["intercept"]
        self.idf_ = weights["idf"]
        if self.idf_.size:
            self.lexical_coef_ = weights["lexical_coef"]
            self.lexical_intercept_ = weights["lexical_intercept"]
        return self


def label_tasks(features: Features, tasks: np.ndarray | None, n_folds: int = 5,
                seed: int = 0) -> tuple[Features, TaskClassifier | None]:
    """Training features with task ids and posteriors, and the classifier routing will use.

    The classifier is fitted on every prompt; each training prompt's posterior comes from
    one fitted without it. Estimators built on posteriors (the task mixture's neighbour
    residuals, stacking's held-out folds, the cost model's mode choice) then learn from
    posteriors as uncertain as those of new prompts, and the classifier is fitted once per
    router instead of once per estimator. With fewer than two tasks there is nothing to
    classify, and the features come back without task information.
    """
    labelled = task_codes(tasks)
    if labelled is None:
        return replace(features, task_ids=None, task_probs=None), None
    codes = labelled[1]
    classifier = TaskClassifier().fit(features, codes)
    posteriors = classifier.out_of_fold(features, codes, n_folds, seed)
    return replace(features, task_ids=codes, task_probs=posteriors), classifier
