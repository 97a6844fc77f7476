"""A static sentence encoder distilled from MiniLM: a table lookup instead of a transformer.

Routing a prompt must cost a few milliseconds, and a transformer pass over a 120-token
prompt costs ~12 ms on two CPU cores. Here every vocabulary token is run through the int8
MiniLM once, alone ([CLS] token [SEP]), and its pooled vector is kept in a table; a text is
then the mean of its tokens' rows, L2-normalised (the idea behind model2vec-style static
embeddings). The table is centred (the mean token vector, which every text shares, is
removed) so that texts differ by what they contain. Encoding a 500-character prompt takes
~0.1 ms, and since there is no window the whole prompt counts, however long.

On the dev datasets the router routes as well with these vectors as with the transformer's
(task inference leans on them and on word n-grams; see benchmarks/routing_quality.py);
neighbour-based estimators lose a little, which the stacked default absorbs.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from switchman.embed import OnnxMiniLMEncoder, default_cache_dir


class StaticMiniLMEncoder:
    """Mean of per-token MiniLM vectors; the table is built once per cache directory."""

    name = "minilm-l6-static-v1"
    dim = OnnxMiniLMEncoder.dim
    #: Texts per tokenizer batch (tokenized in parallel), and steps of the progress bar.
    _CHUNK = 1024

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._lock = threading.Lock()
        self._table: np.ndarray | None = None
        self._tokenizer: Any = None

    @property
    def table_path(self) -> Path:
        return self.cache_dir / "encoders" / self.name / "table.npy"

    def _load(self) -> None:
        if self._table is not None:
            return
        with self._lock:
            if self._table is not None:
                return
            source = OnnxMiniLMEncoder(self.cache_dir)
            if not self.table_path.exists():
                _save_atomically(self.table_path, _build_table(source))
            self._tokenizer = source.tokenizer()
            self._fallback_ids = [self._tokenizer.token_to_id("[CLS]"),
                                  self._tokenizer.token_to_id("[SEP]")]
            # float16 on disk (23 MB); float32 in memory (47 MB), since numpy converts
            # float16 rows ~6x slower than it sums float32 ones.
            self._table = np.load(self.table_path, allow_pickle=False).astype(np.float32)

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._load()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        from tqdm.auto import tqdm

        quiet = not (show_progress and len(texts) > 1000)
        with tqdm(total=len(texts), desc="embedding", unit="text", disable=quiet) as bar:
            for start in range(0, len(texts), self._CHUNK):
                chunk = list(texts[start : start + self._CHUNK])
                out[start : start + len(chunk)] = self._mean_vectors(chunk)
                bar.update(len(chunk))
        return out

    def _mean_vectors(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        sums = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, encoding in enumerate(encodings):
            # A text with no tokens (empty, whitespace) gets the special tokens' vector.
            ids = encoding.ids or self._fallback_ids
            sums[row] = self._table[ids].sum(axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        return sums / np.maximum(norms, 1e-12)


def _build_table(source: OnnxMiniLMEncoder) -> np.ndarray:
    """Each vocabulary token's pooled MiniLM vector, centred, as float16 (~23 MB)."""
    vectors = source.token_vectors()
    return (vectors - vectors.mean(axis=0)).astype(np.float16)


def _save_atomically(path: Path, array: np.ndarray) -> None:
    """A concurrent reader sees no table or a whole one, never a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".table-", suffix=".npy", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
