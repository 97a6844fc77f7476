"""The ASCII fast path gives exactly the tokenizer's ids: on every dev prompt, and on the
odd cases (control characters, punctuation runs, over-long words, empty text)."""

from __future__ import annotations

import pandas as pd
import pytest
from shared_data import ROUTING, requires_routing_data

pytest.importorskip("tokenizers")

from switchman.embed_build import packaged_tokenizer  # noqa: E402
from switchman.wordpiece import AsciiWordPiece  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer():  # noqa: ANN201
    return packaged_tokenizer()


def _reference(tokenizer, text: str) -> list[int]:  # noqa: ANN001
    return tokenizer.encode(text, add_special_tokens=False).ids


ODD = ["", "   ", "\t\n\r", "Hello, World!!", "a\x00b\x01c\x0bd\x0ce\x1ff\x7fg", "x" * 101,
       "x" * 100, "snake_case and kebab-case, dots...", "C++ & C# @ $5.00 (50%) {a:[1]}",
       "UPPER lower MiXeD 123abc abc123 ##sub", "tab\tseparated\nlines\r\nend", "`~^|\\/"]


def test_odd_ascii_texts_tokenize_as_the_tokenizer_does(tokenizer) -> None:  # noqa: ANN001
    fast = AsciiWordPiece(tokenizer)
    for text in ODD:
        assert fast.ids(text) == _reference(tokenizer, text), repr(text)


def test_non_ascii_text_is_left_to_the_tokenizer(tokenizer) -> None:  # noqa: ANN001
    assert AsciiWordPiece(tokenizer).ids("café naïve 東京") is None


@requires_routing_data
def test_every_ascii_dev_prompt_tokenizes_as_the_tokenizer_does(tokenizer) -> None:  # noqa: ANN001
    fast = AsciiWordPiece(tokenizer)
    checked = 0
    for name in ("routerbench", "mmlupro", "llmrouter", "routellm"):
        prompts = pd.read_parquet(ROUTING / f"{name}.parquet", columns=["prompt"])[
            "prompt"].drop_duplicates()
        if len(prompts) > 3000:
            prompts = prompts.sample(3000, random_state=0)
        for text in prompts:
            ids = fast.ids(text)
            if ids is not None:
                assert ids == _reference(tokenizer, text), text[:200]
                checked += 1
    assert checked > 5000  # most dev prompts are ASCII: the fast path is what runs
