"""The static encoder: its table is built from the real int8 MiniLM (no mocks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

from switchman.embed import OnnxMiniLMEncoder  # noqa: E402
from switchman.embed_static import StaticMiniLMEncoder  # noqa: E402
from switchman.encoders import encoder_by_name  # noqa: E402


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("static-cache")


@pytest.fixture(scope="module")
def encoder(cache_dir: Path) -> StaticMiniLMEncoder:
    enc = StaticMiniLMEncoder(cache_dir)
    enc.encode(["warm up"])  # exports MiniLM and builds the table once for the module
    return enc


def test_shape_dtype_norm_and_empty(encoder: StaticMiniLMEncoder) -> None:
    out = encoder.encode(["What is the capital of France?", "", "   ", "ok"])
    assert out.shape == (4, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_semantics(encoder: StaticMiniLMEncoder) -> None:
    """Texts on one subject are closer than texts on different subjects."""
    a, b, c = encoder.encode([
        "Write a Python function that sorts a list of integers.",
        "Implement a function in Python returning the reversed list.",
        "Which enzyme breaks down starch in the human mouth?",
    ])
    assert a @ b > a @ c + 0.1


def test_whole_prompt_counts_and_batches_agree(encoder: StaticMiniLMEncoder) -> None:
    """No window: a change at the end of a long prompt moves its vector. A text's vector
    does not depend on its batch mates or on chunking."""
    long_text = "Here are some worked examples of arithmetic. " * 200 + "What is 2+2?"
    ids = encoder._tokenizer.encode(long_text, add_special_tokens=False).ids
    assert len(ids) > 1000  # far beyond any transformer window
    with np.load(encoder.table_path) as table:
        rows = table["codes"].astype(np.float32) * table["scales"][:, None]
    expected = rows[ids].sum(axis=0)
    np.testing.assert_allclose(encoder.encode([long_text])[0],
                               expected / np.linalg.norm(expected), atol=1e-5)
    texts = [f"prompt number {i} about topic {i % 7}" for i in range(600)]  # > one chunk
    together = encoder.encode(texts)
    alone = np.stack([encoder.encode([t])[0] for t in texts[::97]])
    np.testing.assert_allclose(together[::97], alone, atol=1e-6)


def test_table_built_once_and_reused_without_torch(encoder: StaticMiniLMEncoder,
                                                   cache_dir: Path) -> None:
    stamp = encoder.table_path.stat().st_mtime_ns
    again = StaticMiniLMEncoder(cache_dir)
    np.testing.assert_array_equal(again.encode(["same text"]), encoder.encode(["same text"]))
    assert again.table_path.stat().st_mtime_ns == stamp
    assert encoder_by_name("minilm-l6-static-v1", cache_dir).encode(["x"]).shape == (1, 384)
    # the table is centred token vectors, stored compactly: int8 codes x a scale per row
    with np.load(encoder.table_path) as table:
        codes, scales = table["codes"], table["scales"]
    assert codes.dtype == np.int8 and codes.shape == (len(scales), OnnxMiniLMEncoder.dim)
    rows = codes.astype(np.float32) * scales[:, None]
    assert np.abs(rows.mean(axis=0)).max() < 1e-3
    np.testing.assert_allclose(np.abs(codes).max(axis=1), 127)  # each row uses the range
    code = ("import sys; from pathlib import Path\n"
            "from switchman.encoders import encoder_by_name\n"
            f"encoder_by_name('minilm-l6-static-v1', Path({str(cache_dir)!r})).encode(['hi'])\n"
            "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize(("n_texts", "show", "shown"),
                         [(1500, True, True), (1500, False, False), (20, True, False)])
def test_progress_bar_only_on_long_runs_that_ask(encoder: StaticMiniLMEncoder,
                                                 capsys: pytest.CaptureFixture[str],
                                                 n_texts: int, show: bool, shown: bool) -> None:
    texts = [f"question number {i} about chemistry" for i in range(n_texts)]
    out = encoder.encode(texts, show_progress=show)
    assert out.shape == (n_texts, 384)
    err = capsys.readouterr().err
    assert ("embedding" in err and f"{n_texts}/{n_texts}" in err) == shown
