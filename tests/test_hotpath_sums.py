"""The compiled sums (switchman/_hotpath.c) give the numpy paths' values, up to float32
rounding: the static encoder's sum of its tokens' int8 rows on dev prompts, and the task
classifier's tf-idf scores on the n-grams of real and generated prompts and its
probabilities. Bad input is an error, never a read outside a table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import ROUTING, requires_routing_data

from switchman import embed_static
from switchman.encoders import default_encoder
from switchman.features import make_features, task_classifier
from switchman.features.lexical import lexical_features
from switchman.features.task_classifier import TaskClassifier

_hotpath = pytest.importorskip("switchman._hotpath", reason="not built: no C compiler")


def _dev_prompts(per_file: int) -> list[str]:
    prompts: list[str] = []
    for name in ("routerbench", "mmlupro", "llmrouter", "routellm"):
        table = pd.read_parquet(ROUTING / f"{name}.parquet", columns=["prompt"])
        prompts += table["prompt"].drop_duplicates().sample(per_file, random_state=0).tolist()
    return prompts + ["", "   ", "x", "ünïcödé 漢字テキスト 🙂"]


@requires_routing_data
def test_the_encoders_token_sums_are_numpys(cache_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = default_encoder(cache_dir)
    prompts = _dev_prompts(100)
    compiled = np.vstack([encoder.encode([p]) for p in prompts])
    monkeypatch.setattr(embed_static, "_hotpath", None)
    python = np.vstack([encoder.encode([p]) for p in prompts])
    cosines = (compiled * python).sum(axis=1)
    assert cosines.min() > 1 - 1e-6
    assert np.abs(compiled - python).max() < 1e-5


@requires_routing_data
def test_the_task_classifiers_lexical_scores_are_numpys(
        monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = _dev_prompts(150)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(len(prompts), 8)).astype(np.float32)
    features = make_features(prompts, noise / np.linalg.norm(noise, axis=1, keepdims=True))
    classifier = TaskClassifier().fit(features, rng.integers(0, 5, len(prompts)))
    odd = prompts[::7] + ["zzzzzz zzzzzz", "a", ""]
    batch = classifier._lexical_scores(lexical_features(odd))
    for i, prompt in enumerate(odd):
        counts = lexical_features([prompt])
        compiled = classifier._lexical_scores(counts)
        assert np.array_equal(compiled[0], batch[i])  # alone as in a batch, to the bit
        with monkeypatch.context() as patch:
            patch.setattr(task_classifier, "_hotpath", None)
            python = classifier._lexical_scores(counts)
        assert compiled.dtype == python.dtype == np.float32 and compiled.shape == (1, 5)
        np.testing.assert_allclose(compiled, python, rtol=1e-5, atol=1e-6)
    with monkeypatch.context() as patch:
        patch.setattr(task_classifier, "_hotpath", None)
        np.testing.assert_allclose(batch, classifier._lexical_scores(lexical_features(odd)),
                                   rtol=1e-5, atol=1e-6)  # scipy's batch product


@requires_routing_data
@pytest.mark.parametrize("lexical", [True, False], ids=["blended", "embedding-only"])
def test_the_task_classifiers_probabilities_are_numpys(
        lexical: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = _dev_prompts(150)
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(len(prompts), 16)).astype(np.float32)
    features = make_features(prompts, noise / np.linalg.norm(noise, axis=1, keepdims=True),
                             lexical=lexical)
    classifier = TaskClassifier().fit(features, rng.integers(0, 6, len(prompts)))
    assert classifier.reads_lexical() is lexical
    batch = classifier.probabilities(features)
    for i in range(0, len(prompts), 9):  # alone as in a batch, to the bit
        assert np.array_equal(classifier.probabilities(features.rows([i]))[0], batch[i])
    with monkeypatch.context() as patch:
        patch.setattr(task_classifier, "_hotpath", None)
        python = classifier.probabilities(features)
    assert batch.dtype == python.dtype == np.float32 and batch.shape == (len(prompts), 6)
    np.testing.assert_allclose(batch, python, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batch.sum(axis=1), 1.0, atol=1e-5)


def test_task_probabilities_refuse_weights_of_another_shape() -> None:
    embeddings, log_chars = np.ones((2, 4), np.float32), np.zeros(2)
    intercept, out = np.zeros(3, np.float32), np.empty((2, 3), np.float32)
    with pytest.raises(ValueError, match="coef"):
        _hotpath.task_probabilities(embeddings, log_chars, np.ones((4, 3), np.float32),
                                    intercept, None, None, 0.4, out)  # no length row
    with pytest.raises(ValueError, match="scores"):
        _hotpath.task_probabilities(embeddings, log_chars, np.ones((5, 3), np.float32),
                                    intercept, np.ones((1, 3), np.float32), intercept, 0.4,
                                    out)
    with pytest.raises(ValueError, match="log_chars"):
        _hotpath.task_probabilities(embeddings, log_chars.astype(np.float32),
                                    np.ones((5, 3), np.float32), intercept, None, None, 0.4,
                                    out)


def test_token_sums_refuse_ids_outside_the_table() -> None:
    codes = np.arange(12, dtype=np.int8).reshape(4, 3)
    scales = np.array([1.0, 0.5, 2.0, 1.0], dtype=np.float32)
    out = np.empty(3, dtype=np.float32)
    _hotpath.token_rows_sum([1, 3, 1], codes, scales, out)
    np.testing.assert_array_equal(out, 0.5 * codes[1] + codes[3] + 0.5 * codes[1])
    for bad in ([4], [-1], [0, 99]):
        with pytest.raises(IndexError, match="outside the table"):
            _hotpath.token_rows_sum(bad, codes, scales, out)
    with pytest.raises(ValueError, match="codes"):
        _hotpath.token_rows_sum([0], codes.astype(np.int16), scales, out)
    with pytest.raises(ValueError, match="out"):  # the result has nowhere to go
        _hotpath.token_rows_sum([0], codes, scales, np.empty(3, dtype=np.float64))


def test_tfidf_scores_refuse_buckets_outside_the_weights() -> None:
    coef = np.arange(8, dtype=np.float32).reshape(4, 2)
    idf = np.ones(4, dtype=np.float32)
    out = np.empty((2, 2), dtype=np.float32)
    indptr = np.array([0, 2, 2], np.int64)  # the second prompt has no n-gram
    _hotpath.tfidf_scores(indptr, np.array([0, 3], np.int32), np.array([1, 1], np.float32),
                          idf, coef, out)
    np.testing.assert_allclose(out, [(coef[0] + coef[3]) / np.sqrt(2), [0, 0]], rtol=1e-6)
    one = np.array([0, 1], np.int64)
    with pytest.raises(IndexError, match="outside the weights"):
        _hotpath.tfidf_scores(one, np.array([4], np.int32), np.ones(1, np.float32), idf,
                              coef, out[:1])
    with pytest.raises(ValueError, match="counts"):  # one count per bucket
        _hotpath.tfidf_scores(np.array([0, 2], np.int64), np.array([0, 1], np.int32),
                              np.ones(1, np.float32), idf, coef, out[:1])
    with pytest.raises(ValueError, match="indptr"):  # offsets past the entries
        _hotpath.tfidf_scores(np.array([0, 5], np.int64), np.array([0], np.int32),
                              np.ones(1, np.float32), idf, coef, out[:1])
    with pytest.raises(ValueError, match="out n x T"):
        _hotpath.tfidf_scores(one, np.array([0], np.int32), np.ones(1, np.float32), idf,
                              coef, out)
