"""Hashed word and character n-gram counts, and what the character block buys."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from switchman.features import make_features
from switchman.features.lexical import (
    CHAR_BITS,
    LEXICAL_WIDTH,
    WORD_BUCKETS,
    _char_buckets,
    _word_buckets,
    lexical_features,
)
from switchman.features.task_classifier import TaskClassifier


def test_word_and_character_blocks() -> None:
    counts = lexical_features(["Enzyme kinetics", "", "ab", "x"]).csr()
    assert counts.shape == (4, LEXICAL_WIDTH) and counts.dtype == np.float32
    first = counts[0].indices
    # 2 words + 1 bigram; "enzyme kinetics" has 13 + 12 + 11 character 3/4/5-grams
    assert (first < WORD_BUCKETS).sum() <= 3 and (first >= WORD_BUCKETS).sum() >= 30
    assert counts[0].sum() == 3 + 13 + 12 + 11
    assert counts[1].nnz == 0  # empty prompt: an empty row, not an error
    assert counts[2].sum() == 1 and counts[2].indices[0] < WORD_BUCKETS  # a word, no 3-gram
    assert counts[3].nnz == 0  # single characters are neither words nor 3-grams


def test_counts_are_stateless_case_blind_and_count_repeats() -> None:
    batch = lexical_features(["Tort LAW", "the same words", "ünïcödé 漢字テキスト 🙂 text"]).csr()
    alone = lexical_features(["tort law"]).csr()
    assert (batch[0] != alone[0]).nnz == 0  # same row whatever else is in the batch
    assert batch[2].nnz > 0
    repeated = lexical_features(["zzzzzz"]).csr()  # 'zzz' x4, 'zzzz' x3, 'zzzzz' x2, word x1
    assert sorted(repeated.data.tolist()) == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("text", ["tort law of the sea, 2nd ed.", "ünïcödé 漢字テキスト text_42 x",
                                  "one", "", "a b c dd"])
def test_word_buckets_are_the_crc32_of_each_word_and_pair(text: str) -> None:
    """Trained routers' weights are keyed by these buckets: however they are computed, they
    must stay the CRC-32 of each word's and each "a b" pair's UTF-8 bytes."""
    words = re.findall(r"\b\w\w+\b", text)
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    expected = [zlib.crc32(g.encode()) & (WORD_BUCKETS - 1) for g in grams]
    assert _word_buckets(text).tolist() == expected


@pytest.mark.parametrize("text", ["tort law of the sea, 2nd ed.", "ünïcödé 漢字テキスト 🙂 x",
                                  "abc", "abcd", "ab", ""])
def test_char_buckets_are_the_rolling_hash_of_each_gram(text: str) -> None:
    """Trained routers' weights are keyed by these buckets too: each 3-, 4- and 5-gram's
    polynomial hash of its code points (base 1,000,003, modulo 2**64), plus its size, times
    the 64-bit golden ratio, top bits; in any order (they are counted)."""
    mask = 2**64 - 1
    expected = []
    for size in (3, 4, 5):
        for start in range(len(text) - size + 1):
            value = 0
            for char in text[start:start + size]:
                value = (value * 1_000_003 + ord(char)) & mask
            expected.append((((value + size) * 0x9E3779B97F4A7C15) & mask) >> (64 - CHAR_BITS))
    assert sorted(_char_buckets(text).tolist()) == sorted(expected)


def test_character_grams_recognise_words_never_seen_in_training() -> None:
    # Each prompt names a made-up term; its kind shows only in the suffix ("-ase" enzymes
    # vs "-itis" inflammations). Word hashing cannot generalise to unseen terms; character
    # grams can. The embeddings are noise, so everything rests on the lexical features.
    rng = np.random.default_rng(0)
    letters = np.array(list("bcdfghklmnprstvz"))

    def prompts(n: int) -> tuple[list[str], np.ndarray]:
        kind = rng.integers(0, 2, n)
        texts = [f"what does {''.join(rng.choice(letters, 6))}{('ase', 'itis')[k]} do"
                 for k in kind]
        return texts, kind

    def features(texts: list[str]):  # noqa: ANN202
        noise = rng.normal(size=(len(texts), 8)).astype(np.float32)
        return make_features(texts, noise / np.linalg.norm(noise, axis=1, keepdims=True))

    train_texts, train_kind = prompts(300)
    test_texts, test_kind = prompts(200)
    classifier = TaskClassifier().fit(features(train_texts), train_kind)
    predicted = classifier.probabilities(features(test_texts)).argmax(axis=1)
    assert np.mean(predicted == test_kind) > 0.9


def test_n_grams_are_made_only_for_a_classifier_that_reads_them() -> None:
    texts = ["what does lipase do", "what is gastritis", "define tort", "solve x^2 = 4"]
    emb = np.eye(4, 8, dtype=np.float32)
    with_grams, without = make_features(texts, emb), make_features(texts, emb, lexical=False)
    assert with_grams.lexical is not None and without.lexical is None
    assert np.array_equal(with_grams.log_chars, without.log_chars)
    codes = np.array([0, 1, 0, 1])
    reads = TaskClassifier().fit(with_grams, codes)
    blind = TaskClassifier().fit(without, codes)
    assert reads.reads_lexical() and not blind.reads_lexical()
    assert np.array_equal(blind.probabilities(without), blind.probabilities(with_grams))
    # a classifier fitted on n-grams never silently predicts without them
    with pytest.raises(ValueError, match="n-grams"):
        reads.probabilities(without)
