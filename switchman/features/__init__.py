"""What estimators learn from: a prompt's embedding, length, n-grams and task posterior.

Features are not estimators: the router makes them once per prompt and every estimator, the
cost model and the evaluation read the same ones. ``featurize`` is the one recipe from text
(the router's, when routing and training, and eval's); ``lexical`` holds the hashed
n-grams and ``task_classifier`` the P(task | prompt) that fills ``Features.task_probs``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from switchman.features.lexical import NgramCounts, lexical_features

if TYPE_CHECKING:
    from switchman.embed import Encoder

#: Batches up to this many prompts (a server's one prompt, or the few of one loop turn) keep
#: their similarities and neighbours in a training set for the next estimator that asks;
#: larger ones (training) recompute them, a block of rows at a time.
SHARED_SEARCH_ROWS = 64


@dataclass(frozen=True)
class Features:
    """What estimators learn from: one row per prompt."""

    embeddings: np.ndarray  # (n, d) float32, L2-normalised
    log_chars: np.ndarray  # (n,) log1p of the prompt's character count
    #: Training only: each prompt's labelled task (the outcomes table's ``task``) as an
    #: index into the columns of ``task_probs``; never present when routing.
    task_ids: np.ndarray | None = None
    #: Hashed word and character n-gram counts, see ``lexical_features``; only made when a
    #: task classifier reads them.
    lexical: NgramCounts | None = None
    #: (n, n_tasks) P(task | prompt) from the router's task classifier, computed once per
    #: prompt for every estimator; out of fold for training prompts (see ``task_classifier``).
    task_probs: np.ndarray | None = None
    #: Similarities already computed, by training matrix (see ``similarity``).
    _similarities: dict[int, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    #: Nearest training rows already found (see ``neighbours``), by (training matrix, k).
    _neighbours: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @cached_property
    def reference_embeddings(self) -> np.ndarray:
        """The embeddings as a neighbour search's training matrix: float32, column-major,
        one copy for every estimator fitted on these features (so they share it, and the
        similarities computed against it).

        Column-major because one routed prompt's product with every training row then
        streams the matrix the way BLAS reads it best: on routerbench's 2,205 rows, with
        caches cold as in a busy server, one prompt's estimate took ~515 against ~608 us,
        and ~238 against ~270 us a prompt in batches of 4."""
        return np.asfortranarray(self.embeddings, dtype=np.float32)

    def similarity(self, reference: np.ndarray, start: int = 0,
                   stop: int | None = None) -> np.ndarray:
        """Cosine similarities of prompts ``start:stop`` to the ``reference`` embeddings.

        One router holds several neighbour searches over the same training prompts (the
        kNN family, the task mixtures' local residuals: one array after loading), so for
        a small batch the product is computed once and handed to each of them.
        """
        if len(self) > SHARED_SEARCH_ROWS:
            return self.embeddings[start:stop] @ reference.T
        found = self._similarities.get(id(reference))
        if found is None:  # the reference is kept with it: its id cannot be reused meanwhile
            if len(self) == 1 or reference.flags.f_contiguous:
                products = self.embeddings @ reference.T
            else:  # for a row-major reference: half the time for a few rows (BLAS packs less)
                products = np.ascontiguousarray((reference @ self.embeddings.T).T)
            found = (reference, products)
            self._similarities[id(reference)] = found
        return found[1][start:stop]

    def neighbours(self, reference: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each prompt's ``k`` most similar rows of ``reference``: (n, k) indices, increasing
        along a row, and their similarities. For at most ``SHARED_SEARCH_ROWS`` prompts: a
        kNN and a task mixture's local residuals that search the same training prompts for
        the same k share one search, and each row is searched by ``top_k``."""
        if len(self) > SHARED_SEARCH_ROWS:
            raise ValueError(f"neighbours() is for at most {SHARED_SEARCH_ROWS} prompts")
        found = self._neighbours.get((id(reference), k))
        if found is None:  # the similarity cache keeps the reference, so its id stays its own
            similarities = self.similarity(reference)
            if len(self) == 1:  # a server's one prompt: no stack nor take_along_axis set-up
                index = top_k(similarities[0], k)[None, :]
                found = (index, similarities[:, index[0]])
            else:
                index = np.stack([top_k(row, k) for row in similarities])
                found = (index, np.take_along_axis(similarities, index, axis=1))
            self._neighbours[(id(reference), k)] = found
        return found

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def rows(self, index: np.ndarray) -> Features:
        def pick(values: Any) -> Any:
            return None if values is None else values[index]

        lexical = None if self.lexical is None else self.lexical.rows(index)
        return Features(self.embeddings[index], self.log_chars[index], pick(self.task_ids),
                        lexical, pick(self.task_probs))

    def dense(self) -> np.ndarray:
        """Embedding plus a standardised length column, for the linear families."""
        n, d = self.embeddings.shape  # filled in place: hstack's checks cost more for one row
        dense = np.empty((n, d + 1), dtype=self.embeddings.dtype)
        dense[:, :d] = self.embeddings
        dense[:, d] = (self.log_chars - 6.0) / 1.5  # ~zero-mean, unit-scale for 50-5000 chars
        return dense


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest ``values`` (one row), in increasing order.

    ``np.argpartition`` over a 2,000-prompt training set costs ~24 us, and a router runs
    two or three neighbour searches per prompt. Here a strided sample's m-th largest value
    is a threshold that about 1.5 k values pass, and only those are partitioned (~10 us).
    When fewer than k pass (an unlucky sample), the whole row is: exact either way, up to
    which of several equal values at the k-th place is kept, as with argpartition.
    """
    n = len(values)
    if k >= n:
        return np.arange(n)
    stride = n // 256
    if stride >= 2:
        sample = values[::stride].copy()  # partitioned in place (a method: no wrapper)
        m = min(len(sample), math.ceil(1.5 * k / stride) + 4)
        sample.partition(len(sample) - m)
        candidates = np.flatnonzero(values >= sample[len(sample) - m])
        if len(candidates) >= k:
            kept = values[candidates].argpartition(len(candidates) - k)[len(candidates) - k:]
            picked = candidates[kept]
            picked.sort()
            return picked
    picked = values.argpartition(n - k)[n - k:]
    picked.sort()
    return picked


def make_features(prompts: Sequence[str], embeddings: np.ndarray,
                  lexical: bool = True) -> Features:
    """The one recipe that turns prompts (already embedded) into estimator features.

    ``lexical``: also count the prompts' hashed n-grams (~0.1 ms for 300 characters), which
    only a task classifier reads. Task labels and posteriors are added by the router
    (``task_classifier.label_tasks``, ``TaskClassifier.with_posteriors``).
    """
    chars = np.fromiter((len(p) for p in prompts), dtype=np.float64, count=len(prompts))
    return Features(embeddings, np.log1p(chars),
                    lexical=lexical_features(prompts) if lexical else None)


def featurize(prompts: Sequence[str], encoder: Encoder, lexical: bool = True,
              show_progress: bool = False) -> Features:
    """Embed ``prompts`` with ``encoder`` (one batched pass) and make their features."""
    embeddings = encoder.encode(list(prompts), show_progress=show_progress)
    return make_features(prompts, embeddings, lexical)


__all__ = ["SHARED_SEARCH_ROWS", "Features", "featurize", "make_features", "top_k"]
