"""Hostile input and slow clients against a real gateway: status counts, error shapes,
dropped connections, decision-log rows, and what 200 trickling sockets do to everyone else.

Part 1 sends a seeded run of generated chat and feedback bodies (benchmarks/hostile_bodies.py)
to ``switchman serve`` with API keys configured, in front of the instant upstream of
benchmarks/gateway_bench_upstream.py, over keep-alive connections from a few threads.
Targets: no 5xx, every 4xx in OpenAI's error shape, every chat answer with its request id,
no dropped connection, one decision row per chat request (feedback writes none) and one
feedback row per rated response.

Part 2 starts a fresh gateway with ``server.max_in_flight: 150`` and opens 200 sockets that
send valid headers (a valid key, a 1 kB Content-Length) and then one body byte every few
seconds. Targets: a normal request answers within 100 ms of its latency before the
tricklers came, none gets a 429 because of them, and every request (the tricklers
included) leaves exactly one decision row.

    .venv/bin/python benchmarks/hostile_input.py [--seed 7] [--chat 3000] [--feedback 1000]

Exit status 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml
from gateway_overhead import ROOT, free_port, process
from hostile_bodies import HostileBodies

KEY = "sk-hostile-bench-0123456789"
AUTH = {"authorization": f"Bearer {KEY}"}
MODELS = ["small", "medium", "large"]
ROUTER = "switchman/auto"


def gateway_config(tmp: Path, upstream: str, log: Path, max_in_flight: int) -> Path:
    caps = ["tools", "json_mode", "vision", "streaming"]
    models = [{"name": name, "endpoint": upstream, "input_per_mtok": 0.1 + i,
               "output_per_mtok": 0.3 + i, "quality_prior": 0.3 + 0.3 * i,
               "context_window": 128_000, "capabilities": caps}
              for i, name in enumerate(MODELS)]
    path = tmp / f"{log.stem}.yaml"
    path.write_text(yaml.safe_dump({
        "models": models, "routers": [{"name": ROUTER}], "auth": {"api_keys": [KEY]},
        "log": {"path": str(log)},
        "server": {"max_in_flight": max_in_flight, "max_body_bytes": 1024 * 1024}}))
    return path


@contextlib.contextmanager
def gateway(tmp: Path, upstream: str, log: Path, max_in_flight: int) -> Iterator[str]:
    """``switchman serve`` in its own process; stopped (and its log flushed) on exit."""
    port = free_port()
    config = gateway_config(tmp, upstream, log, max_in_flight)
    with process([sys.executable, "-m", "switchman.gateway", "serve", "--config", str(config),
                  "--port", str(port)], f"http://127.0.0.1:{port}/healthz",
                 tmp / f"{log.stem}.out"):
        yield f"http://127.0.0.1:{port}"


def decision_rows(log: Path) -> tuple[int, int]:
    with sqlite3.connect(log) as conn:
        return (conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])


def openai_error(r: httpx.Response) -> bool:
    """Whether ``r``'s body is ``{"error": {"message", "type", "param", "code"}}``."""
    try:
        body = r.json()
    except ValueError:
        return False
    err = body.get("error") if isinstance(body, dict) and set(body) == {"error"} else None
    return (isinstance(err, dict) and set(err) == {"message", "type", "param", "code"}
            and isinstance(err["message"], str) and isinstance(err["type"], str))


class Tally:
    """What came back for one kind of request."""

    def __init__(self) -> None:
        self.statuses: collections.Counter[int] = collections.Counter()
        self.bad_shape = self.no_request_id = self.dropped = 0
        self.examples: list[str] = []
        self.lock = threading.Lock()

    def add(self, r: httpx.Response | None, chat: bool, note: str = "") -> None:
        with self.lock:
            if r is None:
                self.dropped += 1
                self.examples.append(f"dropped: {note}")
                return
            self.statuses[r.status_code] += 1
            if r.status_code >= 500:
                self.examples.append(f"{r.status_code} for {note}")
            if r.status_code >= 400 and not openai_error(r):
                self.bad_shape += 1
                self.examples.append(f"shape {r.status_code}: {r.text[:200]} for {note}")
            if chat and not r.headers.get("x-switchman-request-id"):
                self.no_request_id += 1

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + self.dropped

    def line(self, name: str) -> str:
        by_class = collections.Counter(f"{s // 100}xx" for s in self.statuses.elements())
        detail = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (f"{name:<9} {self.total:>5} requests  2xx {by_class['2xx']:>5}  "
                f"4xx {by_class['4xx']:>5}  5xx {by_class['5xx']}  non-OpenAI errors "
                f"{self.bad_shape}  missing request id {self.no_request_id}  dropped "
                f"{self.dropped}\n{'':<10}({detail})")

    def clean(self) -> bool:
        return not (self.bad_shape or self.no_request_id or self.dropped
                    or any(s >= 500 for s in self.statuses))


def _send(clients: threading.local, url: str, path: str, raw: bytes,
          headers: dict[str, bytes]) -> httpx.Response | None:
    client = getattr(clients, "client", None)
    if client is None:
        client = clients.client = httpx.Client(base_url=url, timeout=60)
    try:
        return client.post(path, content=raw, headers={
            "content-type": "application/json", **AUTH, **headers})
    except httpx.TransportError:
        clients.client = None
        client.close()
        return None


def hostile_run(url: str, gen: HostileBodies, n_chat: int, n_feedback: int,
                workers: int) -> tuple[Tally, Tally, set[str]]:
    """Every chat body, then every feedback body (on the ids of answered chats); returns the
    tallies and the response ids feedback was accepted for."""
    chat, feedback, ids, rated = Tally(), Tally(), [], set()
    clients = threading.local()

    def one_chat(item: tuple[bytes, dict[str, bytes]]) -> None:
        r = _send(clients, url, "/v1/chat/completions", *item)
        chat.add(r, True, item[0][:120].decode(errors="replace"))
        if r is not None and r.status_code == 200 \
                and r.headers.get("content-type", "").startswith("application/json"):
            ids.append(r.json()["id"])

    def one_feedback(raw: bytes) -> None:
        r = _send(clients, url, "/v1/feedback", raw, {})
        feedback.add(r, False, raw[:120].decode(errors="replace"))
        if r is not None and r.status_code == 200:
            rated.add(r.json()["id"])

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one_chat, [gen.chat() for _ in range(n_chat)]))
        bodies = [gen.feedback(ids) for _ in range(n_feedback)]
        list(pool.map(lambda raw: one_feedback(raw), bodies))
    return chat, feedback, rated


# --- slow clients ----------------------------------------------------------------------

def _trickle(port: int, n: int, interval: float, stop: threading.Event,
             answers: collections.Counter[str]) -> None:
    """``n`` sockets that send valid headers, then one body byte per ``interval`` seconds."""
    socks = []
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            f"authorization: Bearer {KEY}\r\ncontent-type: application/json\r\n"
            "content-length: 1000\r\n\r\n").encode()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(head + b"{")
        s.setblocking(False)
        socks.append(s)
    while not stop.wait(interval):
        for s in socks:
            with contextlib.suppress(OSError):
                s.send(b" ")
    for s in socks:  # what the gateway said, if anything, before we hang up
        try:
            data = s.recv(200)
            answers[data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else
                    "closed by the gateway" if data == b"" else "other"] += 1
        except BlockingIOError:
            answers["no answer yet"] += 1
        except OSError:
            answers["reset"] += 1
        s.close()


def _latencies(client: httpx.Client, n: int, statuses: collections.Counter[int]
               ) -> list[float]:
    body = {"model": ROUTER, "messages": [{"role": "user", "content": "hi"}]}
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.post("/v1/chat/completions", json=body, headers=AUTH)
        out.append((time.perf_counter() - t0) * 1000)
        statuses[r.status_code] += 1
    return out


def slow_run(url: str, n_sockets: int, interval: float, seconds: float) -> dict[str, Any]:
    port = int(url.rsplit(":", 1)[1])
    before_status: collections.Counter[int] = collections.Counter()
    during_status: collections.Counter[int] = collections.Counter()
    answers: collections.Counter[str] = collections.Counter()
    with httpx.Client(base_url=url, timeout=30) as client:
        _latencies(client, 20, before_status)  # warm-up
        before = _latencies(client, 100, before_status)
        stop = threading.Event()
        thread = threading.Thread(target=_trickle,
                                  args=(port, n_sockets, interval, stop, answers))
        thread.start()
        time.sleep(min(2.0, seconds / 4))  # all sockets connected and holding their bodies
        during, t0 = [], time.monotonic()
        while time.monotonic() - t0 < seconds:
            during += _latencies(client, 10, during_status)
            time.sleep(0.2)
        stop.set()
        thread.join()
        time.sleep(1.0)  # let the gateway settle the hung-up tricklers
    return {"before": before, "during": during, "before_status": before_status,
            "during_status": during_status, "answers": answers,
            "requests": 20 + len(before) + len(during) + n_sockets}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chat", type=int, default=3000)
    parser.add_argument("--feedback", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--slow-sockets", type=int, default=200)
    parser.add_argument("--trickle-interval", type=float, default=3.0)
    parser.add_argument("--slow-seconds", type=float, default=15.0)
    args = parser.parse_args()
    sys.setrecursionlimit(10_000)  # json.dumps of the bodies nested 1,500 deep, here only
    ok = True
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        with process([sys.executable, str(ROOT / "benchmarks" / "gateway_bench_upstream.py"),
                      "--port", str(up_port)], f"http://127.0.0.1:{up_port}/", tmp / "up.log"):
            log = tmp / "hostile.sqlite"
            gen = HostileBodies(args.seed, [ROUTER, *MODELS])
            t0 = time.perf_counter()
            with gateway(tmp, upstream, log, 4096) as url:
                chat, feedback, rated = hostile_run(url, gen, args.chat, args.feedback,
                                                    args.workers)
            seconds = time.perf_counter() - t0
            rows, feedback_rows = decision_rows(log)
            chat_requests = chat.total - chat.dropped
            print(f"hostile input, seed {args.seed}: {chat.total} chat and {feedback.total} "
                  f"feedback bodies, {args.workers} keep-alive clients, API keys on, "
                  f"{seconds:.1f} s")
            print(chat.line("chat"))
            print(feedback.line("feedback"))
            print(f"decision log: {rows} rows for {chat_requests} chat requests "
                  f"({'equal' if rows == chat_requests else 'NOT EQUAL'}); feedback rows "
                  f"{feedback_rows} for {feedback.statuses[200]} accepted feedback bodies on "
                  f"{len(rated)} responses (one row per response: the last rating counts)")
            for example in (chat.examples + feedback.examples)[:10]:
                print(f"  e.g. {example}")
            ok &= chat.clean() and feedback.clean() and rows == chat_requests
            ok &= feedback_rows == len(rated)

            slow_log = tmp / "slow.sqlite"
            with gateway(tmp, upstream, slow_log, 150) as url:
                slow = slow_run(url, args.slow_sockets, args.trickle_interval,
                                args.slow_seconds)
            slow_rows, _ = decision_rows(slow_log)
    before, during = slow["before"], slow["during"]
    p50_before, p50_during = statistics.median(before), statistics.median(during)
    p99_during = sorted(during)[int(0.99 * (len(during) - 1))]
    shed = slow["during_status"][429]
    print(f"\nslow clients: {args.slow_sockets} sockets with a valid key trickling a body "
          f"byte every {args.trickle_interval:g} s, server.max_in_flight 150")
    print(f"  normal request p50 {p50_before:.1f} ms before, {p50_during:.1f} ms during "
          f"({p50_during - p50_before:+.1f} ms; target <= +100 ms), p99 during "
          f"{p99_during:.1f} ms, {len(during)} requests during")
    print(f"  429 during: {shed} of {len(during)} (target 0); statuses before "
          f"{dict(slow['before_status'])}, during {dict(slow['during_status'])}")
    print(f"  trickling sockets at the end: {dict(slow['answers'])}")
    print(f"  decision log: {slow_rows} rows for {slow['requests']} chat requests "
          f"({'equal' if slow_rows == slow['requests'] else 'NOT EQUAL'})")
    ok &= p50_during - p50_before <= 100 and shed == 0 and slow_rows == slow["requests"]
    print(f"\nall targets met: {'yes' if ok else 'no'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
