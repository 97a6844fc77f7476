"""One prompt's neighbour search (``top_k``, ``Features.neighbours``) against a full sort."""

from __future__ import annotations

import numpy as np
import pytest

from switchman.estimators.knn import KNNEstimator
from switchman.features import SHARED_SEARCH_ROWS, Features, top_k


def _sorted_top(values: np.ndarray, k: int) -> np.ndarray:
    return np.sort(np.argsort(-values, kind="stable")[:k])


@pytest.mark.parametrize("n", [5, 300, 2205, 20_000])
@pytest.mark.parametrize("k", [1, 30, 100])
def test_top_k_is_the_k_largest_in_increasing_order(n: int, k: int) -> None:
    rng = np.random.default_rng(n + k)
    for _ in range(20):
        values = rng.normal(size=n).astype(np.float32)
        assert np.array_equal(top_k(values, k), _sorted_top(values, min(k, n)))


def test_top_k_when_the_sample_is_unlucky() -> None:
    """The strided sample holds all of the largest values, so its threshold lets fewer
    than k through: the whole row is partitioned instead, and the answer is the same."""
    values = np.random.default_rng(0).random(2205).astype(np.float32)  # all in [0, 1)
    values[::8] += 1.0 + np.arange(len(values[::8]), dtype=np.float32)  # what the sample reads
    assert np.array_equal(top_k(values, 100), _sorted_top(values, 100))
    assert np.array_equal(top_k(values, 300), _sorted_top(values, 300))


def _features(rng: np.random.Generator, n: int) -> Features:
    embeddings = rng.normal(size=(n, 16)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return Features(embeddings, np.full(n, 5.0))


def test_neighbours_are_searched_once_per_reference_and_k() -> None:
    rng = np.random.default_rng(0)
    reference = _features(rng, 3000).embeddings
    one = _features(rng, 1)
    index, similarity = one.neighbours(reference, 50)
    assert index.shape == similarity.shape == (1, 50)
    assert np.array_equal(index[0], _sorted_top((one.embeddings @ reference.T)[0], 50))
    assert np.array_equal(similarity[0], (one.embeddings @ reference.T)[0][index[0]])
    assert one.neighbours(reference, 50)[0] is index  # the second family's search is free
    assert one.neighbours(reference, 10)[0].shape == (1, 10)
    few = _features(rng, 5)
    index, similarity = few.neighbours(reference, 20)
    for row in range(5):
        assert np.array_equal(index[row], _sorted_top(few.similarity(reference)[row], 20))
    assert np.array_equal(similarity, np.take_along_axis(few.similarity(reference), index, 1))
    with pytest.raises(ValueError, match="at most"):
        _features(rng, SHARED_SEARCH_ROWS + 1).neighbours(reference, 5)


@pytest.mark.parametrize("batch_size", [6, 200])
def test_one_prompt_predicts_as_its_row_of_a_batch(batch_size: int) -> None:
    """The gateway estimates a prompt alone or in a small batch, by load: the same
    neighbours, summed in the same order (a batch's similarities come from another
    product shape, which may round differently in the last place)."""
    rng = np.random.default_rng(1)
    train = _features(rng, 3000)
    knn = KNNEstimator(k=40).fit(train, rng.random((3000, 4)))
    batch = _features(rng, batch_size)  # a gateway's few, and a training-sized batch
    together = knn.predict(batch)
    for i in range(0, len(batch), 7):
        np.testing.assert_allclose(knn.predict(batch.rows(np.array([i]))), together[i:i + 1],
                                   rtol=1e-6)
