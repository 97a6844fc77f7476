"""A static sentence encoder distilled from MiniLM: a table lookup instead of a transformer.

Routing a prompt must cost a few milliseconds, and a transformer pass over a 120-token
prompt costs ~12 ms on two CPU cores. Here every vocabulary token is run through MiniLM
(fp32, so that every machine builds the same table: see ``token_vectors_fp32``) once, alone
([CLS] token [SEP]), and its pooled vector is kept in a table; a text is
then the mean of its tokens' rows, L2-normalised (the idea behind model2vec-style static
embeddings). The table is centred (the mean token vector, which every text shares, is
removed) so that texts differ by what they contain, and stored as int8 with one scale per
token (12 MB in memory; a text's vector is within cosine 0.9999 of the float32 sum).
Encoding a 500-character prompt takes ~0.1 ms, and since there is no window the whole
prompt counts, however long.

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

import numpy as np

from switchman.embed import OnnxMiniLMEncoder, default_cache_dir, progress_bar
from switchman.embed_build import packaged_tokenizer, token_vectors_fp32
from switchman.hotpath import compiled as _hotpath
from switchman.wordpiece import WordPiece


class StaticMiniLMEncoder:
    """Mean of per-token MiniLM vectors; the table is built once per cache directory."""

    #: v2: distilled from the fp32 graph. v1 (from the int8 model) came out different on
    #: different CPUs; routers trained with it must be trained again (``encoder_by_name``).
    name = "minilm-l6-static-v2"
    dim = OnnxMiniLMEncoder.dim
    #: Texts per tokenizer batch (tokenized in parallel), and steps of the progress bar.
    _CHUNK = 1024

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._lock = threading.Lock()
        self._codes: np.ndarray | None = None  # (vocab, dim) int8
        self._scales: np.ndarray | None = None  # (vocab,) float32: row = scale x codes
        self._wordpiece: WordPiece | None = None

    @property
    def table_path(self) -> Path:
        return self.cache_dir / "encoders" / self.name / "table-int8.npz"

    def _load(self) -> None:
        if self._codes is not None:
            return
        with self._lock:
            if self._codes is not None:
                return
            if not self.table_path.exists():
                _save_atomically(self.table_path, table_from_vectors(token_vectors_fp32()))
            tokenizer = packaged_tokenizer()
            self._wordpiece = WordPiece(tokenizer)
            self._fallback_ids = [tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")]
            with np.load(self.table_path, allow_pickle=False) as table:
                self._scales, self._codes = table["scales"], table["codes"]

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._load()
        if len(texts) <= self._CHUNK and not show_progress:  # one chunk (a server's prompt)
            return self._mean_vectors(list(texts))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with progress_bar(len(texts), show_progress) as bar:
            for start in range(0, len(texts), self._CHUNK):
                chunk = list(texts[start : start + self._CHUNK])
                out[start : start + len(chunk)] = self._mean_vectors(chunk)
                bar.update(len(chunk))
        return out

    def _mean_vectors(self, texts: list[str]) -> np.ndarray:
        # Texts are tokenised through a per-word cache, exactly as the tokenizer would
        # (WordPiece): faster than a HF call for one prompt, and than encode_batch's thread
        # pool for a gateway's batch of a few.
        token_ids = [self._wordpiece.ids(text) for text in texts]
        sums = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, ids in enumerate(token_ids):
            # A text with no tokens (empty, whitespace) gets the special tokens' vector.
            if _hotpath is not None:  # the rows summed in one pass, no gathered copy
                _hotpath.token_rows_sum(ids or self._fallback_ids, self._codes, self._scales,
                                        sums[row])
                continue
            # np.take gathers the rows ~1.4x faster than fancy indexing does
            rows = np.array(ids or self._fallback_ids, dtype=np.intp)
            sums[row] = self._scales.take(rows) @ self._codes.take(rows, axis=0)
        # np.linalg.norm(sums, axis=1)'s own arithmetic, without its ~8 us of dispatch
        norms = np.sqrt(np.add.reduce(sums * sums, axis=1, keepdims=True))
        return sums / np.maximum(norms, 1e-12)


def table_from_vectors(vectors: np.ndarray) -> dict[str, np.ndarray]:
    """The table of per-token pooled vectors (vocab, dim): centred, as int8 codes x a row
    scale. ``vectors`` is changed in place."""
    vectors -= vectors.mean(axis=0)
    scales = np.maximum(np.abs(vectors).max(axis=1), 1e-12) / 127.0
    codes = np.round(vectors / scales[:, None]).astype(np.int8)
    return {"codes": codes, "scales": scales.astype(np.float32)}


def _save_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A concurrent reader sees no table or a whole one, never a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".table-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
