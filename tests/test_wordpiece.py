"""The per-word path gives exactly the tokenizer's ids: on every dev prompt, and on the
odd cases (control characters, punctuation runs, over-long words, empty text, accents,
CJK, Unicode punctuation and whitespace). Every test runs twice: with ASCII text split by
the compiled scan (switchman._hotpath) and by the Python loop it replaces."""

from __future__ import annotations

import pandas as pd
import pytest
from shared_data import ROUTING, requires_routing_data

pytest.importorskip("tokenizers")

from switchman import wordpiece  # noqa: E402
from switchman.embed_build import packaged_tokenizer  # noqa: E402
from switchman.wordpiece import WordPiece  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer():  # noqa: ANN201
    return packaged_tokenizer()


@pytest.fixture(autouse=True, params=["compiled", "python"])
def ascii_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.param == "python":
        monkeypatch.setattr(wordpiece, "_hotpath", None)
    elif wordpiece._hotpath is None:
        pytest.skip("switchman._hotpath not built: no C compiler")


def _reference(tokenizer, text: str) -> list[int]:  # noqa: ANN001
    return tokenizer.encode(text, add_special_tokens=False).ids


ODD = ["", "   ", "\t\n\r", "Hello, World!!", "a\x00b\x01c\x0bd\x0ce\x1ff\x7fg", "x" * 101,
       "x" * 100, "snake_case and kebab-case, dots...", "C++ & C# @ $5.00 (50%) {a:[1]}",
       "UPPER lower MiXeD 123abc abc123 ##sub", "tab\tseparated\nlines\r\nend", "`~^|\\/"]


NON_ASCII = ["café naïve 東京", "Ｆｕｌｌ　ｗｉｄｔｈ，ｔｅｘｔ。", "it’s “quoted” — dash–en…",
             "x\u00a0y\u2003z\u3000w\u2028v", "zero\u200bwidth\u00adsoft",
             "Straße İstanbul ΣΊΣΥΦΟΣ", "3×4 ≤ 5° ± ∑ √2 € ¥ ©", "e\u0301 a\u0308 combining",
             "emoji 🙂👍🏽 text",
             "\ufeffbom\ufffdreplacement\x00nul", "Привет, мир! مرحبا بالعالم", "ｶﾀｶﾅ ﾊﾝｶｸ"]


def test_odd_texts_tokenize_as_the_tokenizer_does(tokenizer) -> None:  # noqa: ANN001
    fast = WordPiece(tokenizer)
    for text in ODD + NON_ASCII:
        assert fast.ids(text) == _reference(tokenizer, text), repr(text)


def test_bounded_caches_start_again_and_stay_exact(tokenizer, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(wordpiece, "MAX_CACHED_WORDS", 3)
    monkeypatch.setattr(wordpiece, "MAX_CLASSIFIED_CHARS", 2)
    fast = WordPiece(tokenizer)
    for text in (ODD + NON_ASCII) * 2:
        assert fast.ids(text) == _reference(tokenizer, text), repr(text)
    assert len(fast._classified) <= 2 + max(len(set(t)) for t in NON_ASCII)


@requires_routing_data
def test_every_dev_prompt_tokenizes_as_the_tokenizer_does(tokenizer) -> None:  # noqa: ANN001
    fast = WordPiece(tokenizer)
    checked = 0
    for name in ("routerbench", "mmlupro", "llmrouter", "routellm"):
        prompts = pd.read_parquet(ROUTING / f"{name}.parquet", columns=["prompt"])[
            "prompt"].drop_duplicates()
        if len(prompts) > 3000:
            prompts = prompts.sample(3000, random_state=0)
        for text in prompts:
            assert fast.ids(text) == _reference(tokenizer, text), text[:200]
            checked += not text.isascii()
    assert checked > 500  # the normalised path is checked on many real prompts too
