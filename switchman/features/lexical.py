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
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from scipy import sparse

from switchman.hotpath import compiled as _hotpath

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
    spaced = map(zlib.crc32, repeat(b" "), single[:-1])  # crc32(b" ", word's crc)
    pairs = list(map(zlib.crc32, words[1:], spaced))
    return np.array(single + pairs, dtype=np.int64) & (WORD_BUCKETS - 1)


def _char_buckets(text: str) -> np.ndarray:
    """Buckets of every character n-gram, computed for all positions at once with numpy
    (a Python loop over ~1,500 grams per prompt would cost ~1 ms; this costs ~30 us).

    The 3-, 4- and 5-gram hashes are written into one array, which is then mixed in
    place: for a short prompt (a server's case) numpy's per-call cost is most of the time,
    and this takes half the calls of mixing each size apart. Integer arithmetic modulo
    2**64 is exact, so the buckets are those of the plain rolling hash.
    """
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = len(codes)
    sizes = [size for size in _CHAR_GRAM_SIZES if size <= n]
    hashes = np.empty(sum(n - size + 1 for size in sizes), dtype=np.uint64)
    rolling, end = codes, 0  # hash of the n-gram starting at each position, for growing n
    for size in range(2, max(sizes, default=0) + 1):
        rolling = rolling[:-1] * _POLYNOMIAL + codes[size - 1:]  # wraps modulo 2**64
        if size in _CHAR_GRAM_SIZES:
            block = hashes[end:end + len(rolling)]
            np.add(rolling, np.uint64(size), out=block)
            end += len(rolling)
    hashes *= _FIBONACCI  # multiplicative hashing: top bits are well mixed
    hashes >>= np.uint64(64 - CHAR_BITS)
    return hashes


def _counted(buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct buckets in order and how often each occurs: ``np.unique(...,
    return_counts=True)``'s result for int32 ``buckets`` (sorted here, in place), which
    takes about two thirds of its time on a long prompt's ~5,000 buckets."""
    buckets.sort()
    edges = np.empty(len(buckets) + 1, dtype=bool)  # where a run of equal buckets starts,
    edges[0] = edges[-1] = True  # and the end: a run's count is the gap to the next edge
    np.not_equal(buckets[1:], buckets[:-1], out=edges[1:-1])
    first = np.flatnonzero(edges)
    return buckets[first[:-1]], first[1:] - first[:-1]


def _row(prompt: str) -> tuple[np.ndarray, np.ndarray]:
    """One prompt's distinct buckets (int32, sorted) and their counts (float32).

    ``switchman._hotpath.ngram_row`` computes the same in one pass (~25 us for a
    480-character prompt, against ~150 here). Here, both blocks are written into one int32
    array (every bucket is below 2**31), sorted in place.
    """
    text = prompt.lower()
    if _hotpath is not None:
        found = _hotpath.ngram_row(text)
        if found is not None:  # None: a surrogate, whose error the path below raises
            return np.frombuffer(found[0], np.int32), np.frombuffer(found[1], np.float32)
    words, chars = _word_buckets(text), _char_buckets(text)
    buckets = np.empty(len(words) + len(chars), dtype=np.int32)
    buckets[:len(words)] = words
    np.add(chars, np.uint64(WORD_BUCKETS), out=buckets[len(words):], casting="unsafe")
    unique, counts = _counted(buckets)
    return unique, counts.astype(np.float32)


@dataclass(frozen=True)
class NgramCounts:
    """Hashed n-gram counts of n prompts, (n, LEXICAL_WIDTH), as the three arrays of CSR.

    Plain arrays rather than a scipy matrix: building one runs ~25 us of format checks and
    dtype conversions, a tenth of routing one prompt in total, while the task classifier
    reads one prompt's arrays directly. ``csr()`` makes the matrix, for training and batches.
    """

    indptr: np.ndarray  # (n + 1,) int: row i's entries are indptr[i]:indptr[i + 1]
    indices: np.ndarray  # int32 buckets, increasing within each row
    counts: np.ndarray  # float32, each bucket's count in its prompt

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def csr(self) -> sparse.csr_matrix:
        return sparse.csr_matrix((self.counts, self.indices, self.indptr),
                                 shape=(len(self), LEXICAL_WIDTH))

    def rows(self, index: np.ndarray) -> NgramCounts:
        picked = self.csr()[index]
        return NgramCounts(picked.indptr, picked.indices, picked.data)


def lexical_features(prompts: Sequence[str]) -> NgramCounts:
    """Counts of hashed word and character n-grams, lower-cased, one row per prompt.

    Each row's buckets are counted sorted (see ``_counted``), so the rows are canonical
    CSR: no duplicate to sum nor order to fix, whether or not a scipy matrix is made.
    """
    if len(prompts) == 1:  # a server's case: no concatenation
        unique, count = _row(prompts[0])
        return NgramCounts(np.array([0, len(unique)], dtype=np.int32), unique, count)
    rows = [_row(prompt) for prompt in prompts]
    lengths = np.zeros(len(prompts) + 1, dtype=np.int64)
    lengths[1:] = [len(unique) for unique, _ in rows]
    return NgramCounts(
        np.cumsum(lengths),
        np.concatenate([u for u, _ in rows]) if rows else np.zeros(0, np.int32),
        np.concatenate([c for _, c in rows]) if rows
        else np.zeros(0, np.float32))
