"""BERT's uncased WordPiece ids, fast: a per-word cache over the real model.

The static encoder needs a prompt's token ids and nothing else, yet most of a HF
``tokenizers`` call on one prompt goes to normalising and pre-tokenising it and building
an ``Encoding`` (offsets, masks, token strings) the encoder never reads. For ASCII text,
``BertNormalizer`` (clean text, lowercase, strip accents, pad CJK) followed by
``BertPreTokenizer`` reduces to three steps Python does in microseconds:

* control characters other than tab, newline and carriage return are dropped (ASCII has no
  accents or CJK ideographs, and lowercasing it is exact);
* the text splits on whitespace;
* every printable ASCII character that is not a letter or digit is a word of its own (BERT
  counts all of 33-47, 58-64, 91-96 and 123-126 as punctuation).

Other text is normalised by the tokenizer's own normaliser (a string in, a string out:
a quarter of a full call), and split the same way, each non-ASCII character of the
normalised text classified once by the tokenizer's own pre-tokeniser (whitespace,
punctuation, or part of a word) rather than by Python's Unicode tables, whose version may
differ from the tokenizer's. On mmlupro's non-ASCII prompts (~480 characters) that path
costs ~110 us, half of it the normaliser's, where the full call costs ~180 us.

For ASCII text those steps and the cache lookups run in one compiled pass
(``switchman._hotpath``, ~10 us for a 480-character prompt where the loop in ``ids`` takes
~100); the loop stays as the reference and as the path of an install without the extension.

Each word's WordPiece ids come from the tokenizer's own model and are cached, so the ids are
the tokenizer's exactly (``tests/test_wordpiece.py`` checks every dev prompt). The cache
starts empty: seeding it with the vocabulary's 24,694 whole words (each its own token)
spared a fresh process ~11 tokenizer calls per mmlupro prompt, yet made routing one prompt
~5% slower (a larger dict, colder to look up in).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from switchman.hotpath import compiled as _hotpath

_ASCII_CONTROLS = {c: None for c in [*range(0, 9), 11, 12, *range(14, 32), 127]}
_ANY_ASCII_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PUNCTUATION = r"!-/:-@\[-`{-~"
_WORDS = re.compile(rf"[a-z0-9]+|[{_PUNCTUATION}]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
#: Distinct words cached at most, a few MB (then the cache starts again: memory stays
#: bounded whatever words arrive); non-ASCII characters classified at most.
MAX_CACHED_WORDS = 50_000
MAX_CLASSIFIED_CHARS = 20_000


class WordPiece:
    """Token ids of any text as ``tokenizer.encode(text, add_special_tokens=False)`` gives
    them, for a BERT uncased WordPiece ``tokenizers.Tokenizer``."""

    def __init__(self, tokenizer: Any) -> None:
        self._model = tokenizer.model
        self._normalizer = tokenizer.normalizer
        self._pre_tokenizer = tokenizer.pre_tokenizer
        #: Values are tuples: one object per word (a list's items live apart from it),
        #: one memory read fewer per word when the cache is cold in a busy server.
        self._cache: dict[str, tuple[int, ...]] = {}
        #: Non-ASCII characters seen in normalised text; those of them the pre-tokeniser
        #: splits at (whitespace) and isolates (punctuation), which ``_split`` knows.
        self._classified: set[str] = set()
        self._spaces = self._marks = ""
        self._split = _splitter("", "")
        self._classifying = threading.Lock()  # a lost separator would stay lost

    def ids(self, text: str) -> list[int]:
        """The tokenizer's ids of ``text`` (no special tokens)."""
        if text.isascii():
            if _hotpath is not None:  # the same split and lookups in one C pass
                return _hotpath.ascii_wordpiece_ids(text, self._cache, self._word_ids)
            if _ANY_ASCII_CONTROL.search(text):  # rare: the search costs a tenth of translate
                text = text.translate(_ASCII_CONTROLS)
            words = _WORDS.findall(text.lower())
        else:
            words = self._normalised_words(text)
        cache = self._cache
        out: list[int] = []
        for word in words:
            found = cache.get(word)
            if found is None:
                found = self._word_ids(word)
            out += found
        return out

    def _normalised_words(self, text: str) -> list[str]:
        normal = self._normalizer.normalize_str(text)
        unseen = set(_NON_ASCII.findall(normal)) - self._classified
        if unseen:
            with self._classifying:
                for char in unseen:
                    self._classify(char)
        return self._split.findall(normal)

    def _classify(self, char: str) -> None:
        """Whether the pre-tokeniser splits at ``char`` (whitespace: 2 pieces of "a?a"),
        isolates it (punctuation: 3) or keeps it in a word (1)."""
        if len(self._classified) >= MAX_CLASSIFIED_CHARS:  # word characters are many,
            self._classified.clear()  # separators a few hundred: those are kept
        pieces = len(self._pre_tokenizer.pre_tokenize_str(f"a{char}a"))
        if pieces == 2 and char not in self._spaces:
            self._spaces += char
            self._split = _splitter(self._spaces, self._marks)
        elif pieces == 3 and char not in self._marks:
            self._marks += char
            self._split = _splitter(self._spaces, self._marks)
        self._classified.add(char)

    def _word_ids(self, word: str) -> tuple[int, ...]:
        if len(self._cache) >= MAX_CACHED_WORDS:
            self._cache.clear()
        ids = tuple(token.id for token in self._model.tokenize(word))
        self._cache[word] = ids
        return ids


def _splitter(spaces: str, marks: str) -> re.Pattern[str]:
    """Words of normalised text (lowercase ASCII without controls, whitespace a space, and
    the non-ASCII ``spaces`` and punctuation ``marks`` seen so far): runs of anything else,
    and each punctuation character alone. One pass, with no translation to ASCII first."""
    spaces, marks = re.escape(spaces), re.escape(marks)
    return re.compile(rf"[^ {spaces}{_PUNCTUATION}{marks}]+|[{_PUNCTUATION}{marks}]")
