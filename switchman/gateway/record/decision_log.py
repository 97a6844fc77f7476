"""The decision log: one SQLite row per request, plus feedback, written off the event loop.

SQLite (stdlib, WAL) needs no server and is enough for one gateway process; a background
thread drains a queue in batches so a slow disk never adds latency to a request. Prompt text
is stored only when the configuration says so; API keys only ever as a short hash.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cache
from itertools import chain
from operator import attrgetter
from pathlib import Path

from switchman.gateway.errors import MAX_STORED_CHARS, clip
from switchman.state import LocalStore, StateStore, StoreUnavailable

logger = logging.getLogger(__name__)

_RECENT = "responses"
#: Indexes of the text columns that may hold what a client sent (all but ``prompt``).
_TEXT_COLUMNS = (0, 2, 3, 4, 8, 10, 17, 18, 19, 20)
#: How long the writer lets rows gather after the first one before it writes them: one
#: transaction and one thread wake-up per ~50 ms instead of per request (at thousands of
#: requests per second the wake-ups, GIL hand-overs and per-transaction work of row-sized
#: batches were ~10% of the gateway's CPU). Each commit rewrites the last pages of the
#: table and of both indexes into the WAL whatever the batch's size: at 1,800 rows/s the
#: writer spent ~31 us per row with 20 ms batches, ~22 with 50 ms (benchmarks/
#: decision_log_cpu.py). A row reaches disk at most this much later; ``owner`` knows the
#: rows still waiting, and replicas sharing a store see an id a batch later.
BATCH_LINGER_S = 0.05
#: Prompt text waiting for the writer, at most (beyond it rows are queued without their text).
MAX_QUEUED_PROMPT_BYTES = 64 * 1024 * 1024
#: Response ids kept in the state store for :meth:`DecisionLog.owner`. In process they only
#: spare a disk read (ids still queued are held apart until written), so a few seconds of
#: traffic is enough: 100,000 ids took ~25 MB of a gateway's memory. Shared over Redis they
#: are how one replica knows another's responses, so feedback that comes minutes later
#: needs the longer window.
RECENT_IDS_LOCAL = 10_000
RECENT_IDS_SHARED = 100_000


def safe_text(text: str) -> str:
    """``text`` as SQLite can store it: code points UTF-8 cannot encode are escaped."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")

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
_ONE_DECISION = "(" + ",".join("?" * 22) + ")"
#: Decisions per INSERT statement. executemany runs one statement per row, and the sqlite3
#: module lets go of the GIL around each: under load that is two GIL hand-overs per row
#: with the event loop, which cost both threads more than the insert itself (the writer
#: thread's CPU per row was 25-34 us in a loaded gateway, 5 us in a quiet one). One
#: statement of many rows lets go once. 64 x 22 values stays far below SQLite's limit of
#: 32,766 bound parameters.
_ROWS_PER_INSERT = 64
# Feedback on a response is idempotent: a repeat replaces the earlier score (a learner fed
# from this table must not count one response twice).
_INSERT_FEEDBACK = ("INSERT INTO feedback (request_id, ts, score, label, comment, api_key_id) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET "
                    "ts = excluded.ts, score = excluded.score, label = excluded.label, "
                    "comment = excluded.comment, api_key_id = excluded.api_key_id")
_ONE_FEEDBACK_PER_RESPONSE = """
DELETE FROM feedback WHERE id NOT IN (SELECT MAX(id) FROM feedback GROUP BY request_id);
CREATE UNIQUE INDEX feedback_once ON feedback (request_id);
"""


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
        """Column values; runs on the writer thread, so serialisation costs no request time.

        Text that UTF-8 cannot encode (a lone surrogate from a client's JSON) is escaped:
        SQLite would refuse the row. Client strings are clipped (see :func:`clip`), except
        the prompt, stored only when the configuration asks for it.
        """
        values = list(_FIELD_VALUES(self))
        for i in (5, 6, 7):  # plan, tried, errors
            values[i] = _json_strings(_clipped(values[i]))
        values[11] = int(values[11])
        for i in _TEXT_COLUMNS:
            text = values[i]
            # clip and safe_text return most texts as they are: test for that once
            if isinstance(text, str) and (len(text) > MAX_STORED_CHARS or not text.isascii()):
                values[i] = safe_text(clip(text))
        if values[-1] is not None:
            values[-1] = safe_text(values[-1])
        return tuple(values)


#: All of a record's fields in column order, read in one call (~6x faster than a loop).
_FIELD_VALUES = attrgetter(*(f.name for f in fields(DecisionRecord)))


def _json_strings(items: list[str]) -> str:
    """``json.dumps(items)``: the same text, built directly when no item needs escaping
    (model names and error summaries, nearly always), since the encoder is most of what a
    row costs the writer thread. One probe string answers for every item at once: a space
    needs no escaping, and each test fails on the joined text if it fails on one item.
    json.dumps escapes what UTF-8 cannot hold."""
    if not items:
        return "[]"
    probe = " ".join(items)
    if probe.isascii() and probe.isprintable() and '"' not in probe and "\\" not in probe:
        return '["' + '", "'.join(items) + '"]'
    return json.dumps(items)


def _clipped(items: list[str]) -> list[str]:
    """``[clip(s) for s in items]``, and ``items`` itself when no item is too long."""
    if max(map(len, items), default=0) <= MAX_STORED_CHARS:
        return items
    return [clip(s) for s in items]


@cache
def _insert_decisions(rows: int) -> str:
    """The INSERT statement of ``rows`` decisions (built once per row count)."""
    return "INSERT OR REPLACE INTO decisions VALUES " + ",".join([_ONE_DECISION] * rows)


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_SCHEMA)
    has_unique = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND "
                              "name = 'feedback_once'").fetchone()
    if not has_unique:  # a log written before feedback was idempotent: keep the last score
        conn.executescript(_ONE_FEEDBACK_PER_RESPONSE)
    return conn


class DecisionLog:
    """Queue in front of a writer thread; ``record`` never blocks the caller.

    The queue is a deque (appends and pops are atomic) and an event that wakes the writer
    when it waits: ``queue.Queue`` took a lock and signalled a condition for every row on
    both threads, about a third of what the writer spent per row.
    """

    def __init__(self, path: Path, max_queue: int = 100_000, recent: int = RECENT_IDS_LOCAL,
                 store: StateStore | None = None,
                 on_drop: Callable[[int], None] | None = None,
                 max_prompt_bytes: int = MAX_QUEUED_PROMPT_BYTES) -> None:
        self.path = path
        self._on_drop = on_drop
        self._max_prompt_bytes = max_prompt_bytes
        self._prompt_bytes = 0
        self._bytes_lock = threading.Lock()
        self.prompts_dropped = 0
        self._max_queue = max_queue
        self._items: deque[object] = deque()
        #: Set when there may be items for the writer; it clears it before it drains.
        self._wake = threading.Event()
        #: Recent response ids -> the caller's key id ("" for none): ``owner`` without disk.
        self._recent: StateStore = LocalStore() if store is None else store
        self._recent.bound(_RECENT, recent)
        #: Ids recorded but not on disk yet -> key id: ``owner`` must know them before the
        #: writer has indexed them in the store (see ``_remember``) and whatever the store
        #: has evicted. The loop thread adds, the writer removes once committed.
        self._unwritten: dict[str, str] = {}
        self.dropped = 0
        connect(path).close()  # fail at start-up, not on the first request
        self._thread = threading.Thread(target=self._run, name="switchman-decision-log",
                                        daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        if len(self._items) >= self._max_queue:
            self._lost(1, "decision log queue full")
            return False
        self._enqueue(item)
        return True

    def _enqueue(self, item: object) -> None:
        self._items.append(item)
        if not self._wake.is_set():  # the writer waits (or is about to drain anyway)
            self._wake.set()

    def _lost(self, rows: int, why: str) -> None:
        """Count rows that will never reach disk: ``/v1/status``, the log and a metric."""
        self.dropped += rows
        if self._on_drop is not None:
            self._on_drop(rows)
        if self.dropped == rows or (self.dropped - rows) // 1000 != self.dropped // 1000:
            logger.warning("%s: %d row(s) lost, %d in all", why, rows, self.dropped)

    def alive(self) -> bool:
        """Whether the writer thread runs (``/healthz`` reports a dead one as degraded)."""
        return self._thread.is_alive()

    def record(self, decision: DecisionRecord) -> None:
        self._unwritten[decision.request_id] = decision.api_key_id or ""
        if decision.prompt is not None:
            with self._bytes_lock:
                if self._prompt_bytes + len(decision.prompt) > self._max_prompt_bytes:
                    decision.prompt = None  # the row matters more than its text
                    self.prompts_dropped += 1
                else:
                    self._prompt_bytes += len(decision.prompt)
        if not self._put(("d", decision)):  # the row is lost, not the response it answers
            self._recent.put(_RECENT, decision.request_id,
                             self._unwritten.pop(decision.request_id, ""))
            self._written_prompt(decision)

    def _written_prompt(self, decision: DecisionRecord) -> None:
        if decision.prompt is not None:
            with self._bytes_lock:
                self._prompt_bytes -= len(decision.prompt)

    def record_feedback(self, request_id: str, score: float, label: str | None,
                        comment: str | None, api_key_id: str | None) -> None:
        self._put(("f", (safe_text(request_id), time.time(), score, label,
                         None if comment is None else safe_text(comment), api_key_id)))

    def owner(self, request_id: str) -> str | None:
        """The key id ("" for none) of whoever made response ``request_id``; None if it was
        never served (ids not written yet and recent ones from memory, older ones from
        disk). The writer forgets an unwritten id only after its row is committed, so every
        id is in one of the three places whenever this looks."""
        found = self._unwritten.get(request_id)
        if found is None:
            found = self._recent.get(_RECENT, request_id)
        if found is not None:
            return found
        conn = sqlite3.connect(str(self.path), timeout=30)
        try:
            row = conn.execute("SELECT api_key_id FROM decisions WHERE request_id = ?",
                               (safe_text(request_id),)).fetchone()
        finally:
            conn.close()
        return None if row is None else row[0] or ""

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything queued so far is on disk (tests, shutdown)."""
        if not self.alive():
            return
        done = threading.Event()
        if self._put(("sync", done)):
            done.wait(timeout)

    def close(self) -> None:
        self.flush()
        if self.alive():
            self._enqueue(None)
            self._thread.join(timeout=10)

    def _run(self) -> None:
        conn = connect(self.path)
        items = self._items
        try:
            running = True
            while running:
                self._wake.wait()
                self._wake.clear()  # before draining: a later append sets it again
                if not items:
                    continue
                first = items[0]
                if first is not None and first[0] != "sync":  # type: ignore[index]
                    time.sleep(BATCH_LINGER_S)
                while running and items:
                    batch = []
                    while items and len(batch) < 512:
                        batch.append(items.popleft())
                    running = self._write_batch(conn, batch)
        finally:
            conn.close()

    def _write_batch(self, conn: sqlite3.Connection, batch: list) -> bool:
        """Write ``batch``; False once it held the stop signal. A failing batch is counted
        as lost rather than stopping the log for good."""
        try:
            return self._write(conn, batch)
        except Exception:
            logger.exception("decision log writer failed on a batch")
            self._lost(sum(1 for i in batch if i is not None and i[0] in "df"),
                       "decision log write failed")
            return None not in batch

    def _write(self, conn: sqlite3.Connection, batch: list) -> bool:
        decisions, feedback, events, running = [], [], [], True
        for item in batch:
            if item is None:
                running = False
            elif item[0] == "d":
                self._written_prompt(item[1])
                decisions.append(item[1])
            elif item[0] == "f":
                feedback.append(item[1])
            else:
                events.append(item[1])
        rows = []
        for decision in decisions:
            try:
                rows.append(decision.row())
            except Exception:
                logger.exception("decision log: request %r cannot be stored",
                                 safe_text(str(decision.request_id))[:100])
                self._lost(1, "decision row could not be serialised")
        try:
            self._insert(conn, rows, feedback)
        except sqlite3.Error:
            # One bad row must not take the batch with it: retry row by row.
            for row in rows:
                self._insert_one(conn, _insert_decisions(1), row)
            for row in feedback:
                self._insert_one(conn, _INSERT_FEEDBACK, row)
        finally:  # written or lost, each response stays known (and the unwritten bounded)
            self._remember(decisions)
        for event in events:
            event.set()
        return running

    def _remember(self, decisions: list[DecisionRecord]) -> None:
        """Index the batch's response ids in the state store, then forget them as unwritten:
        one round trip per batch instead of one per request on the event loop (with Redis,
        one of a pinned request's three). Replicas see an id a batch later."""
        if not decisions:
            return
        owners = [(d.request_id, d.api_key_id or "") for d in decisions]
        try:
            self._recent.put_many(_RECENT, owners)
        except StoreUnavailable as exc:  # a shared store without a fallback: disk has them
            logger.warning("recent response ids not shared (%s)", exc)
        for request_id, _ in owners:
            self._unwritten.pop(request_id, None)

    @staticmethod
    def _insert(conn: sqlite3.Connection, decisions: list[tuple], feedback: list[tuple]) -> None:
        with conn:
            for start in range(0, len(decisions), _ROWS_PER_INSERT):
                part = decisions[start:start + _ROWS_PER_INSERT]
                conn.execute(_insert_decisions(len(part)), list(chain.from_iterable(part)))
            if feedback:
                conn.executemany(_INSERT_FEEDBACK, feedback)

    def _insert_one(self, conn: sqlite3.Connection, sql: str, row: tuple) -> None:
        try:
            with conn:
                conn.execute(sql, row)
        except sqlite3.Error:
            logger.exception("decision log: a row of request %r was lost",
                             safe_text(str(row[0]))[:100])
            self._lost(1, "decision log write failed")
