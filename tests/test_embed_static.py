"""The static encoder: its table is distilled from the real MiniLM, fp32 (no mocks).

The module's table is built once, in a subprocess where torch cannot be imported (the
default install has none), and checked against rows of the table torch's forward passes
give (tests/fixtures, written by benchmarks/encoder_torch_free.py on another machine: the
table must not depend on the CPU that builds it) and, where torch is installed, against a
table torch computes here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

from blocked_imports import TORCH_STACK, block_imports  # noqa: E402

from switchman.embed import OnnxMiniLMEncoder  # noqa: E402
from switchman.embed_build import packaged_tokenizer  # noqa: E402
from switchman.embed_static import StaticMiniLMEncoder, table_from_vectors  # noqa: E402
from switchman.embed_torch import token_vectors_torch, torch_available  # noqa: E402
from switchman.encoders import RETIRED_STATIC, encoder_by_name  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "minilm_torch_reference.npz"
#: The bar the torch-free build must clear against torch's table, row by row.
MIN_ROW_COSINE = 0.9999


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("static-cache")


@pytest.fixture(scope="module")
def torch_free_build(cache_dir: Path) -> dict:
    """Builds the int8 model and the table where torch and the export stack are unimportable."""
    code = block_imports() + (
        "import json\n"
        "from pathlib import Path\n"
        "from switchman.embed_static import StaticMiniLMEncoder\n"
        f"vec = StaticMiniLMEncoder(Path({str(cache_dir)!r})).encode(['warm up'])[0]\n"
        f"loaded = sorted(m for m in sys.modules if m.partition('.')[0] in {TORCH_STACK!r})\n"
        "print(json.dumps({'vector': vec.tolist(), 'loaded': loaded}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def encoder(cache_dir: Path, torch_free_build: dict) -> StaticMiniLMEncoder:
    enc = StaticMiniLMEncoder(cache_dir)
    enc.encode(["warm up"])  # loads the table the torch-free subprocess built
    return enc


def _rows(path: Path) -> np.ndarray:
    with np.load(path) as table:
        return table["codes"].astype(np.float32) * table["scales"][:, None]


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_builds_without_torch(torch_free_build: dict, encoder: StaticMiniLMEncoder) -> None:
    """The table comes from a process that could not import torch, and loads here; the
    int8 model (the contextual encoder's) is not built for it."""
    assert torch_free_build["loaded"] == []
    assert encoder.table_path.is_file()
    assert not (encoder.cache_dir / "encoders" / OnnxMiniLMEncoder.BASE_NAME).exists()
    np.testing.assert_array_equal(np.float32(torch_free_build["vector"]),
                                  encoder.encode(["warm up"])[0])


def test_table_matches_torch_reference_rows(encoder: StaticMiniLMEncoder) -> None:
    """Rows of the table torch gave, committed: the torch-free table built here has them."""
    with np.load(FIXTURE) as ref:
        ids, expected = ref["token_ids"], ref["codes"].astype(np.float32) * ref["scales"][:, None]
    cos = _row_cosines(_rows(encoder.table_path)[ids], expected)
    print(f"\nstatic table vs torch reference rows ({len(ids)} tokens): "
          f"min row cosine {cos.min():.7f}")
    assert cos.min() >= MIN_ROW_COSINE


@pytest.mark.skipif(not torch_available(), reason="needs the export extra (torch)")
def test_table_matches_torchs_forward_passes(encoder: StaticMiniLMEncoder) -> None:
    """Where torch is installed: the same forward passes run by torch, every row compared."""
    reference = table_from_vectors(token_vectors_torch())
    cos = _row_cosines(_rows(encoder.table_path),
                       reference["codes"].astype(np.float32) * reference["scales"][:, None])
    print(f"\nstatic table vs torch's forward passes ({len(cos)} rows): "
          f"min row cosine {cos.min():.7f}, mean {cos.mean():.7f}")
    assert cos.min() >= MIN_ROW_COSINE


def test_the_int8_distilled_table_is_retired_with_a_clear_error(cache_dir: Path) -> None:
    with pytest.raises(ValueError, match="retired.*train this router again"):
        encoder_by_name(RETIRED_STATIC, cache_dir)


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
    ids = packaged_tokenizer().encode(long_text, add_special_tokens=False).ids
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
    assert encoder_by_name("minilm-l6-static-v2", cache_dir).encode(["x"]).shape == (1, 384)
    # the table is centred token vectors, stored compactly: int8 codes x a scale per row
    with np.load(encoder.table_path) as table:
        codes, scales = table["codes"], table["scales"]
    assert codes.dtype == np.int8 and codes.shape == (len(scales), OnnxMiniLMEncoder.dim)
    rows = codes.astype(np.float32) * scales[:, None]
    assert np.abs(rows.mean(axis=0)).max() < 1e-3
    np.testing.assert_allclose(np.abs(codes).max(axis=1), 127)  # each row uses the range
    code = ("import sys; from pathlib import Path\n"
            "from switchman.encoders import encoder_by_name\n"
            f"encoder_by_name('minilm-l6-static-v2', Path({str(cache_dir)!r})).encode(['hi'])\n"
            "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize(("n_texts", "show", "shown"),
                         [(1500, True, True), (1500, False, False), (20, True, False)])
def test_progress_bar_only_on_long_runs_that_ask(encoder: StaticMiniLMEncoder,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 n_texts: int, show: bool, shown: bool) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # bars are drawn on terminals only
    texts = [f"question number {i} about chemistry" for i in range(n_texts)]
    out = encoder.encode(texts, show_progress=show)
    assert out.shape == (n_texts, 384)
    err = capsys.readouterr().err
    assert ("embedding" in err and f"{n_texts}/{n_texts}" in err) == shown


def test_no_progress_bar_when_stderr_is_not_a_terminal(encoder: StaticMiniLMEncoder,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    texts = [f"question number {i} about physics" for i in range(1500)]
    encoder.encode(texts, show_progress=True)
    assert capsys.readouterr().err == ""
