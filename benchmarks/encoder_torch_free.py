"""Is the torch-free MiniLM the one torch gives? Row by row over the static table.

The static encoder's token table is distilled from the fp32 graph switchman.embed_build
writes (no torch); the same forward passes run by torch (switchman.embed_torch, needs the
`export` extra) give the reference table. Printed: the row-wise cosine between the two
tables (min, 0.1% quantile, mean) and the share of identical int8 codes. The contextual
int8 MiniLM is built two ways, from the packaged weights without torch and with the torch
export, each in its own throw-away cache directory; printed, its cosine on a few prompts of
mixed lengths (padding included), both run by this machine's onnxruntime.

    .venv/bin/python benchmarks/encoder_torch_free.py
        [--write-fixture tests/fixtures/minilm_torch_reference.npz]

--write-fixture stores torch's table rows for a few tokens, its int8 export's and
sentence-transformers' vectors of three prompts, which tests compare against where torch
is not installed (CI's default install).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    from switchman.embed import OnnxMiniLMEncoder
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from switchman.embed import OnnxMiniLMEncoder
from switchman.embed_build import encode_fp32, token_vectors_fp32, weights_dir  # noqa: E402
from switchman.embed_static import table_from_vectors  # noqa: E402
from switchman.embed_torch import (  # noqa: E402
    EXTRA_HINT,
    export_minilm_int8_torch,
    token_vectors_torch,
    torch_available,
)

#: Specials, frequent words, subwords, digits, punctuation, rare and unused entries.
FIXTURE_TOKENS = [0, 1, 100, 101, 102, 103, 999, 1010, 1012, 1996, 2003, 2054, 2129, 3000,
                  4997, 7592, 9999, 12345, 15000, 20000, 23333, 27000, 29612, 30521]
PROMPTS = [
    "What is the capital of France?",
    "Write a Python function that reverses a linked list, then explain its complexity.",
    "Solve for x: 3x + 7 = 22. " * 12,
]


def table_rows(table: dict[str, np.ndarray]) -> np.ndarray:
    return table["codes"].astype(np.float32) * table["scales"][:, None]


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def sentence_transformers_fp32(texts: list[str]) -> np.ndarray:
    """The fp32 reference: the packaged model run by sentence-transformers (torch)."""
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(weights_dir()), device="cpu")
    model.max_seq_length = 512  # whole prompts, as the graph sees them
    return model.encode(texts, normalize_embeddings=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write-fixture", type=Path, help="store reference rows for the tests")
    args = ap.parse_args()
    if not torch_available():
        sys.exit(EXTRA_HINT)

    t = time.perf_counter()
    free = table_from_vectors(token_vectors_fp32())
    print(f"torch-free table (fp32 graph): {time.perf_counter() - t:.1f} s, "
          f"torch imported: {'torch' in sys.modules}")
    t = time.perf_counter()
    ref = table_from_vectors(token_vectors_torch())
    print(f"torch's table: {time.perf_counter() - t:.1f} s")
    cos = row_cosines(table_rows(free), table_rows(ref))
    same_codes = float((free["codes"] == ref["codes"]).mean())
    print(f"static table, {len(cos)} rows: row-wise cosine torch-free vs torch "
          f"min {cos.min():.7f}, 0.1% quantile {np.quantile(cos, 0.001):.7f}, "
          f"mean {cos.mean():.7f}; identical int8 codes {100 * same_codes:.3f}%")

    with tempfile.TemporaryDirectory() as tmp:
        free_dir, torch_dir = Path(tmp) / "torch-free", Path(tmp) / "torch"
        export_minilm_int8_torch(torch_dir / "encoders" / OnnxMiniLMEncoder.BASE_NAME)
        vec_free = OnnxMiniLMEncoder(free_dir).encode(PROMPTS)
        vec_ref = OnnxMiniLMEncoder(torch_dir).encode(PROMPTS)
    print("contextual int8 encoder, cosine per prompt:",
          " ".join(f"{c:.7f}" for c in (vec_free * vec_ref).sum(1)))

    if args.write_fixture:
        fp32 = sentence_transformers_fp32(PROMPTS)
        print("fp32 graph (no torch) vs sentence-transformers, cosine per prompt:",
              " ".join(f"{c:.7f}" for c in (encode_fp32(PROMPTS) * fp32).sum(1)))
        ids = np.asarray(FIXTURE_TOKENS)
        np.savez_compressed(args.write_fixture, token_ids=ids, codes=ref["codes"][ids],
                            scales=ref["scales"][ids], prompts=np.asarray(PROMPTS),
                            prompt_vectors=vec_ref, prompt_vectors_fp32=fp32)
        print(f"wrote {args.write_fixture} ({args.write_fixture.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
