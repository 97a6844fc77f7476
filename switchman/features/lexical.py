"""Hashed n-gram counts of a prompt: what the task classifier reads besides the embedding.

Stateless (hashing, no vocabulary), so nothing about the training text is stored and a
router's features for a new prompt need no fitted state. Two blocks of columns:

- word uni- and bigrams: subject words ("tort", "enzyme", "GDP") name a prompt's domain
  more sharply than a small sentence embedding does;
- character 3- to 5-grams: word pieces, units, formula and code fragments ("mol", "kJ",
  "def ", "x^2") that word tokens split or miss. On the dev datasets they raised held-out
  task accuracy on mmlupro from ~81% to ~83% and routing AIQ in 7 of 8 splits.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np
from scipy import sparse

#: Hash buckets per block: large enough that subject vocabularies rarely collide.
WORD_BUCKETS = 2**17
CHAR_BITS = 18
LEXICAL_WIDTH = WORD_BUCKETS + 2**CHAR_BITS  # char n-grams take the columns after the words

_WORD = re.compile(r"\b\w\w+\b")
_ASCII_WORD = re.compile(rb"\b\w\w+\b")  # the same words in ASCII text, found in its bytes
_CHAR_GRAM_SIZES = (3, 4, 5)
_POLYNOMIAL = np.uint64(1_000_003)  # rolling hash base over Unicode code points
_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # multiplicative hashing: top bits are well mixed


def _word_buckets(text: str) -> np.ndarray:
    """Buckets of the CRC-32 of every word and of every pair "a b" of neighbours (UTF-8).

    A pair's CRC continues its first word's over " " and the second word, so no pair string
    is built; ASCII text (most prompts) is searched as bytes, so no word is encoded apart:
    the same buckets as hashing each gram's own string, in about two thirds of the time.
    """
    if text.isascii():
        words = _ASCII_WORD.findall(text.encode())
    else:
        words = [word.encode() for word in _WORD.findall(text)]
    single = list(map(zlib.crc32, words))
    spaced = [zlib.crc32(b" ", value) for value in single[:-1]]
    pairs = list(map(zlib.crc32, words[1:], spaced))
    return np.array(single + pairs, dtype=np.int64) & (WORD_BUCKETS - 1)


def _char_buckets(text: str) -> np.ndarray:
    """Buckets of every character n-gram, computed for all positions at once with numpy
    (a Python loop over ~1,500 grams per prompt would cost ~1 ms; this costs ~30 us)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    buckets = []
    rolling = codes  # hash of the n-gram starting at each position, for growing n
    for size in range(2, max(_CHAR_GRAM_SIZES) + 1):
        if len(codes) < size:
            break
        rolling = rolling[:-1] * _POLYNOMIAL + codes[size - 1:]  # wraps modulo 2**64
        if size in _CHAR_GRAM_SIZES:
            mixed = (rolling + np.uint64(size)) * _FIBONACCI
            buckets.append((mixed >> np.uint64(64 - CHAR_BITS)).astype(np.int64))
    return np.concatenate(buckets) if buckets else np.zeros(0, dtype=np.int64)


def _counted(buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct buckets in order and how often each occurs: ``np.unique(...,
    return_counts=True)``'s result, sorted as int32 (every bucket is below 2**31), which
    takes about two thirds of its time on a long prompt's ~5,000 buckets."""
    ordered = np.sort(buckets.astype(np.int32))
    if not len(ordered):
        return ordered, np.zeros(0, dtype=np.int64)
    starts = np.empty(len(ordered), dtype=bool)
    starts[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    first = np.flatnonzero(starts)
    return ordered[first], np.diff(first, append=len(ordered))


def lexical_features(prompts: Sequence[str]) -> sparse.csr_matrix:
    """(n, LEXICAL_WIDTH) counts of hashed word and character n-grams, lower-cased.

    Each row's buckets are counted sorted (see ``_counted``), so the matrix is built
    canonical: scipy's ``sum_duplicates`` sort pass and format checks cost more than the
    counting itself for one prompt, a server's case (~0.3 ms there).
    """
    indices, counts, lengths = [], [], np.zeros(len(prompts) + 1, dtype=np.int64)
    for row, prompt in enumerate(prompts):
        text = prompt.lower()
        buckets = np.concatenate([_word_buckets(text), WORD_BUCKETS + _char_buckets(text)])
        unique, count = _counted(buckets)
        indices.append(unique)
        counts.append(count)
        lengths[row + 1] = len(unique)
    return sparse.csr_matrix(
        (np.concatenate(counts).astype(np.float32) if counts else np.zeros(0, np.float32),
         np.concatenate(indices).astype(np.int32) if indices else np.zeros(0, np.int32),
         np.cumsum(lengths)),
        shape=(len(prompts), LEXICAL_WIDTH),
    )
