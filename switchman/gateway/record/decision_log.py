"""The decision log: one SQLite row per request, plus feedback, written off the event loop.

SQLite (stdlib, WAL) needs no server and is enough for one gateway process; a background
thread drains a queue in batches so a slow disk never adds latency to a request. Prompt text
is stored only when the configuration says so; API keys only ever as a short hash.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from switchman.state import LocalStore, StateStore

logger = logging.getLogger(__name__)

_RECENT = "responses"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    request_id TEXT PRIMARY KEY, ts REAL NOT NULL, router TEXT, requested_model TEXT,
    model TEXT, plan TEXT, tried TEXT, errors TEXT, reason TEXT, status INTEGER,
    error_kind TEXT, stream INTEGER, latency_ms REAL, overhead_ms REAL,
    prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd REAL, cost_source TEXT,
    api_key_id TEXT, conversation TEXT, upstream_id TEXT, prompt TEXT);
CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL, ts REAL NOT NULL,
    score REAL NOT NULL, label TEXT, comment TEXT, api_key_id TEXT);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback (request_id);
"""
_INSERT_DECISION = "INSERT OR REPLACE INTO decisions VALUES (" + ",".join("?" * 22) + ")"
_INSERT_FEEDBACK = ("INSERT INTO feedback (request_id, ts, score, label, comment, api_key_id) "
                    "VALUES (?, ?, ?, ?, ?, ?)")


@dataclass(slots=True)
class DecisionRecord:
    """One request as the log stores it (field order = column order)."""

    request_id: str
    ts: float
    router: str | None
    requested_model: str
    model: str | None
    plan: list[str]
    tried: list[str]
    errors: list[str]
    reason: str
    status: int
    error_kind: str | None = None
    stream: bool = False
    latency_ms: float = 0.0
    overhead_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_source: str = "none"
    api_key_id: str | None = None
    conversation: str | None = None
    upstream_id: str | None = None
    prompt: str | None = field(default=None, repr=False)

    def row(self) -> tuple:
        """Column values; runs on the writer thread, so serialisation costs no request time."""
        values = [getattr(self, f.name) for f in fields(self)]
        for i in (5, 6, 7):  # plan, tried, errors
            values[i] = json.dumps(values[i])
        values[11] = int(values[11])
        return tuple(values)


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_SCHEMA)
    return conn


class DecisionLog:
    """Queue in front of a writer thread; ``record`` never blocks the caller."""

    def __init__(self, path: Path, max_queue: int = 100_000, recent: int = 100_000,
                 store: StateStore | None = None) -> None:
        self.path = path
        self._queue: queue.Queue = queue.Queue(max_queue)
        #: Recent response ids -> the caller's key id ("" for none): ``knows`` without disk.
        self._recent: StateStore = LocalStore() if store is None else store
        self._recent.bound(_RECENT, recent)
        self.dropped = 0
        connect(path).close()  # fail at start-up, not on the first request
        self._thread = threading.Thread(target=self._run, name="switchman-decision-log",
                                        daemon=True)
        self._thread.start()

    def _put(self, item: object) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                logger.warning("decision log queue full: %d records dropped", self.dropped)

    def record(self, decision: DecisionRecord) -> None:
        self._recent.put(_RECENT, decision.request_id, decision.api_key_id or "")
        self._put(("d", decision))

    def record_feedback(self, request_id: str, score: float, label: str | None,
                        comment: str | None, api_key_id: str | None) -> None:
        self._put(("f", (request_id, time.time(), score, label, comment, api_key_id)))

    def knows(self, request_id: str) -> bool:
        """Whether a response id was served (recent ones from memory, older from disk)."""
        if self._recent.get(_RECENT, request_id) is not None:
            return True
        conn = sqlite3.connect(str(self.path), timeout=30)
        try:
            row = conn.execute("SELECT 1 FROM decisions WHERE request_id = ?",
                               (request_id,)).fetchone()
        finally:
            conn.close()
        return row is not None

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything queued so far is on disk (tests, shutdown)."""
        done = threading.Event()
        self._put(("sync", done))
        done.wait(timeout)

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        conn = connect(self.path)
        try:
            while True:
                item = self._queue.get()
                batch = [item]
                while len(batch) < 512:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if not self._write(conn, batch):
                    return
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, batch: list) -> bool:
        decisions, feedback, events, running = [], [], [], True
        for item in batch:
            if item is None:
                running = False
            elif item[0] == "d":
                decisions.append(item[1].row())
            elif item[0] == "f":
                feedback.append(item[1])
            else:
                events.append(item[1])
        try:
            with conn:
                if decisions:
                    conn.executemany(_INSERT_DECISION, decisions)
                if feedback:
                    conn.executemany(_INSERT_FEEDBACK, feedback)
        except sqlite3.Error:
            logger.exception("decision log write failed (%d rows lost)",
                             len(decisions) + len(feedback))
        for event in events:
            event.set()
        return running
