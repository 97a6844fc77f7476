"""Is the torch-free MiniLM the one torch gives? Row by row over the static table.

Builds, each in its own throw-away cache directory, the int8 MiniLM two ways: from the
packaged weights with switchman.embed_build (no torch), and with the torch export
(switchman.embed_torch, needs the `export` extra). From each it distils the static
encoder's token table, then prints the row-wise cosine between the two tables (min, 0.1%
quantile, mean), the share of identical int8 codes, and the contextual encoder's cosine on
a few prompts of mixed lengths (padding included).

    .venv/bin/python benchmarks/encoder_torch_free.py [--reference-cache DIR]
        [--write-fixture tests/fixtures/minilm_torch_reference.npz]

Without torch installed, pass --reference-cache: a cache directory whose
encoders/minilm-l6-int8-v1/model.onnx and minilm-l6-static-v1 table were made by torch.
--write-fixture stores the reference's rows for a few tokens and three prompt vectors,
which tests compare against where torch is not installed (CI's default install).
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
from switchman.embed_build import encode_fp32, weights_dir  # noqa: E402
from switchman.embed_static import StaticMiniLMEncoder  # noqa: E402
from switchman.embed_torch import EXTRA_HINT, export_minilm_int8_torch, torch_available  # noqa: E402

#: Specials, frequent words, subwords, digits, punctuation, rare and unused entries.
FIXTURE_TOKENS = [0, 1, 100, 101, 102, 103, 999, 1010, 1012, 1996, 2003, 2054, 2129, 3000,
                  4997, 7592, 9999, 12345, 15000, 20000, 23333, 27000, 29612, 30521]
PROMPTS = [
    "What is the capital of France?",
    "Write a Python function that reverses a linked list, then explain its complexity.",
    "Solve for x: 3x + 7 = 22. " * 12,
]


def table_rows(cache: Path) -> np.ndarray:
    """The static table of a cache directory (built there if missing), as float rows."""
    enc = StaticMiniLMEncoder(cache)
    enc.encode(["warm up"])
    with np.load(enc.table_path) as table:
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
    ap.add_argument("--reference-cache", type=Path,
                    help="cache dir with a torch-made model and table (default: export now)")
    ap.add_argument("--write-fixture", type=Path, help="store reference rows for the tests")
    args = ap.parse_args()

    if args.reference_cache is None and not torch_available():
        sys.exit(EXTRA_HINT + "; or pass --reference-cache")
    if args.write_fixture and not torch_available():
        sys.exit("--write-fixture needs torch for the fp32 reference: " + EXTRA_HINT)
    with tempfile.TemporaryDirectory() as tmp:
        free, ref = Path(tmp) / "torch-free", args.reference_cache or Path(tmp) / "torch"
        t = time.perf_counter()
        free_rows = table_rows(free)
        print(f"torch-free build (int8 model + table): {time.perf_counter() - t:.1f} s, "
              f"torch imported: {'torch' in sys.modules}")
        if args.reference_cache is None:
            t = time.perf_counter()
            export_minilm_int8_torch(ref / "encoders" / OnnxMiniLMEncoder.BASE_NAME)
            print(f"torch export: {time.perf_counter() - t:.1f} s")
        ref_rows = table_rows(ref)

        cos = row_cosines(free_rows, ref_rows)
        with np.load(StaticMiniLMEncoder(free).table_path) as a, \
                np.load(StaticMiniLMEncoder(ref).table_path) as b:
            same_codes = float((a["codes"] == b["codes"]).mean())
        print(f"static table, {len(cos)} rows: row-wise cosine torch-free vs torch "
              f"min {cos.min():.7f}, 0.1% quantile {np.quantile(cos, 0.001):.7f}, "
              f"mean {cos.mean():.7f}; identical int8 codes {100 * same_codes:.3f}%")
        vec_free = OnnxMiniLMEncoder(free).encode(PROMPTS)
        vec_ref = OnnxMiniLMEncoder(ref).encode(PROMPTS)
        print("contextual int8 encoder, cosine per prompt:",
              " ".join(f"{c:.7f}" for c in (vec_free * vec_ref).sum(1)))

        if args.write_fixture:
            fp32 = sentence_transformers_fp32(PROMPTS)
            print("fp32 graph (no torch) vs sentence-transformers, cosine per prompt:",
                  " ".join(f"{c:.7f}" for c in (encode_fp32(PROMPTS) * fp32).sum(1)))
            with np.load(StaticMiniLMEncoder(ref).table_path) as table:
                ids = np.asarray(FIXTURE_TOKENS)
                np.savez_compressed(args.write_fixture, token_ids=ids,
                                    codes=table["codes"][ids], scales=table["scales"][ids],
                                    prompts=np.asarray(PROMPTS), prompt_vectors=vec_ref,
                                    prompt_vectors_fp32=fp32)
            print(f"wrote {args.write_fixture} ({args.write_fixture.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
