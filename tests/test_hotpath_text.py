"""The compiled text scans (switchman/_hotpath.c) return exactly what the pure-Python
paths return: the n-gram buckets and counts on every dev prompt and on generated text of
every kind, the WordPiece ids on generated ASCII text (tests/test_wordpiece.py checks both
paths against the tokenizer on the dev prompts). Trained routers' weights are keyed by
these buckets, so a difference of one bucket would silently change routing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shared_data import ROUTING, requires_routing_data

from switchman.features import lexical

_hotpath = pytest.importorskip("switchman._hotpath", reason="not built: no C compiler")


def _both_rows(monkeypatch: pytest.MonkeyPatch, text: str) -> tuple[tuple, tuple]:
    compiled = lexical._row(text)
    with monkeypatch.context() as patch:
        patch.setattr(lexical, "_hotpath", None)
        python = lexical._row(text)
    return compiled, python


def _assert_same_row(compiled: tuple, python: tuple, text: str) -> None:
    for mine, reference in zip(compiled, python, strict=True):
        assert mine.dtype == reference.dtype, repr(text[:80])
        assert np.array_equal(mine, reference), repr(text[:80])


def test_the_extension_is_what_the_hot_path_uses() -> None:
    assert lexical._hotpath is _hotpath


@requires_routing_data
def test_every_dev_prompt_has_the_python_paths_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    checked = 0
    for name in ("routerbench", "mmlupro", "llmrouter", "routellm"):
        prompts = pd.read_parquet(ROUTING / f"{name}.parquet", columns=["prompt"])[
            "prompt"].drop_duplicates()
        for text in prompts:
            _assert_same_row(*_both_rows(monkeypatch, text), text)
            checked += not text.isascii()
    assert checked > 2000  # Unicode words and code points, not only ASCII bytes


ODD = ["", "a", "ab", "abc", "A\x01B c\x7fD", "__ a_b 12 3", "x\ty\nz\r", "é" * 7,
       "ünïcödé 漢字テキスト 🙂 text_42", "İstanbul ΣΊΣΥΦΟΣ straße", "٣٤ ½ Ⅻ ²³ digits",
       "\u0301\u0308 combining alone", "\U0001f600\U0001f600\U0001f600", "\x00\x00\x00\x00"]


@pytest.mark.parametrize("text", ODD)
def test_odd_texts_have_the_python_paths_buckets(monkeypatch: pytest.MonkeyPatch,
                                                  text: str) -> None:
    _assert_same_row(*_both_rows(monkeypatch, text), text)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_generated_text_has_the_python_paths_buckets(text: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _assert_same_row(*_both_rows(monkeypatch, text), text)


def test_a_surrogate_fails_as_the_python_path_does(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _hotpath.ngram_row("lone \ud800 surrogate") is None  # handed to the Python path
    with pytest.raises(UnicodeEncodeError):
        lexical._row("lone \ud800 surrogate")
    monkeypatch.setattr(lexical, "_hotpath", None)
    with pytest.raises(UnicodeEncodeError):
        lexical._row("lone \ud800 surrogate")


class _Cache(dict):
    """Ids by word: each word's ids made up from its letters, every miss counted."""

    def __init__(self) -> None:
        super().__init__()
        self.misses: list[str] = []

    def miss(self, word: str) -> tuple[int, ...]:
        self.misses.append(word)
        self[word] = tuple(ord(c) for c in word[:3])
        return self[word]


def _python_words(text: str) -> list[str]:
    """The ASCII path of WordPiece.ids without the compiled scan, as words."""
    from switchman.wordpiece import _ANY_ASCII_CONTROL, _ASCII_CONTROLS, _WORDS

    if _ANY_ASCII_CONTROL.search(text):
        text = text.translate(_ASCII_CONTROLS)
    return _WORDS.findall(text.lower())


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=300))
def test_ascii_words_are_the_python_paths(text: str) -> None:
    cache = _Cache()
    ids = _hotpath.ascii_wordpiece_ids(text, cache, cache.miss)
    words = _python_words(text)
    assert ids == [i for word in words for i in cache[word]]
    assert sorted(cache.misses) == sorted(set(words))  # each word looked up, missed once


def test_ascii_words_refuse_other_text_and_pass_on_a_failed_lookup() -> None:
    cache = _Cache()
    with pytest.raises(ValueError, match="ASCII"):
        _hotpath.ascii_wordpiece_ids("café", cache, cache.miss)

    def broken(word: str) -> tuple[int, ...]:
        raise RuntimeError(f"no ids for {word}")

    with pytest.raises(RuntimeError, match="no ids for hello"):
        _hotpath.ascii_wordpiece_ids("hello world", {}, broken)
