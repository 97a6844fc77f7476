"""BERT's uncased WordPiece ids for ASCII text, fast: a per-word cache over the real model.

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

Each word's WordPiece ids come from the tokenizer's own model and are cached, so the ids are
the tokenizer's exactly (``tests/test_embed_static.py`` checks every dev prompt). Text with
any non-ASCII character returns None: the caller asks the full tokenizer.
"""

from __future__ import annotations

import re
from typing import Any

_ASCII_CONTROLS = {c: None for c in [*range(0, 9), 11, 12, *range(14, 32), 127]}
_WORDS = re.compile(r"[a-z0-9]+|[!-/:-@\[-`{-~]")
#: Distinct words cached at most, a few MB (then the cache starts again: memory stays
#: bounded whatever words arrive).
MAX_CACHED_WORDS = 50_000


class AsciiWordPiece:
    """Token ids of ASCII text as ``tokenizer.encode(text, add_special_tokens=False)``
    gives them, for a BERT uncased WordPiece ``tokenizers.Tokenizer``."""

    def __init__(self, tokenizer: Any) -> None:
        self._model = tokenizer.model
        self._cache: dict[str, list[int]] = {}

    def ids(self, text: str) -> list[int] | None:
        """The ids, or None when ``text`` is not ASCII (the full tokenizer's case)."""
        if not text.isascii():
            return None
        words = _WORDS.findall(text.translate(_ASCII_CONTROLS).lower())
        cache = self._cache
        out: list[int] = []
        for word in words:
            found = cache.get(word)
            if found is None:
                found = self._word_ids(word)
            out += found
        return out

    def _word_ids(self, word: str) -> list[int]:
        if len(self._cache) >= MAX_CACHED_WORDS:
            self._cache.clear()
        ids = [token.id for token in self._model.tokenize(word)]
        self._cache[word] = ids
        return ids
