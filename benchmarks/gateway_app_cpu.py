"""CPU per request of the gateway's ASGI app itself, in process, without an HTTP server.

benchmarks/gateway_cpu.py measures the whole ``switchman serve`` process under wrk; on a
shared machine its figures move by a fifth between runs. This one drives the app object
directly (ASGI scope, receive and send in this process; the instant upstream in its own)
with ``--concurrency`` requests at a time, and reads this process's CPU clock (every
thread: the decision-log writer is included) around each round. Targets alternate round
by round, so a neighbour's burst touches all of them alike; medians are printed.

* ``pinned``: ``model`` = a pool model;
* ``auto``: the prior-based ``switchman/auto``;
* ``learned``: with ``--router DIR``, the trained router;
* ``learning, budget``: the same router with ``learn: true`` under a (never exhausted)
  budget: the learner's decision, the context kept for feedback, the bill learned, the
  ledger's reserve and settle, and the learned state published on the gateway's beat;
* ``pinned via starlette``: a pinned request through Starlette's middleware and routing,
  the path chat completions took before ``switchman.gateway.app.ChatFirst``.

    .venv/bin/python benchmarks/gateway_app_cpu.py [--router DIR] [--rounds 12]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from gateway_overhead import ROOT, free_port, gateway_config, process

from switchman.config import load_config
from switchman.gateway.app import ChatFirst, create_app

App = Callable[[dict, Any, Any], Awaitable[None]]
LEARNING = "switchman/learning"


def with_learning(config: Path, router: str) -> Path:
    """``config`` plus a learning router over ``router`` and a budget that covers it."""
    values = yaml.safe_load(config.read_text())
    values["routers"].append({"name": LEARNING, "path": router, "learn": True})
    values["budgets"] = [{"name": "bench", "usd": 1e9, "period": "total",
                          "routers": [LEARNING]}]
    config.write_text(yaml.safe_dump(values))
    return config


def _scope(body: bytes) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
            "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2), "state": {}}


async def one(app: App, body: bytes) -> None:
    """One request; the client then stays connected until the answer is sent."""
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # cancelled with the request: never a disconnect
        return {"type": "http.disconnect"}

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(_scope(body), receive, send)
    if status != [200]:
        raise RuntimeError(f"the gateway answered {status}")


async def round_cpu_us(app: App, body: bytes, concurrency: int, batches: int) -> float:
    """CPU microseconds per request over ``batches`` batches of ``concurrency``."""
    started = time.process_time()
    for _ in range(batches):
        await asyncio.gather(*(one(app, body) for _ in range(concurrency)))
    return 1e6 * (time.process_time() - started) / (concurrency * batches)


@contextlib.asynccontextmanager
async def started(app: ChatFirst) -> AsyncIterator[None]:
    """The app's lifespan: started on entry (routers loaded, log open), stopped on exit."""
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                      "state": {}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    reply = await outbox.get()
    if reply["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"gateway start-up failed: {reply}")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


async def measure(config: Path, router: str | None, concurrency: int, rounds: int,
                  batches: int) -> dict[str, list[float]]:
    app = create_app(load_config(config))
    async with started(app):
        return await _alternate(app, config, router, concurrency, rounds, batches)


async def _alternate(app: ChatFirst, config: Path, router: str | None, concurrency: int,
                     rounds: int, batches: int) -> dict[str, list[float]]:
    names = [m.name for m in load_config(config).models]
    prompt = "What is the capital of France? Answer in one word, please."
    bodies = {"pinned": names[0], "auto": "switchman/auto"}
    if router:
        bodies["learned"] = "switchman/learned"
        bodies["learning, budget"] = LEARNING
    targets: dict[str, tuple[App, bytes]] = {
        label: (app, json.dumps({"model": model, "messages": [
            {"role": "user", "content": prompt}]}).encode())
        for label, model in bodies.items()}
    targets["pinned via starlette"] = (app.app, targets["pinned"][1])
    results: dict[str, list[float]] = {label: [] for label in targets}
    for target, body in targets.values():  # warm-up
        await round_cpu_us(target, body, concurrency, 2)
    for _ in range(rounds):
        for label, (target, body) in targets.items():
            results[label].append(await round_cpu_us(target, body, concurrency, batches))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", help="trained router directory (adds the learned and the "
                        "learning rows)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--batches", type=int, default=20, help="batches per round")
    args = parser.parse_args()
    up_port = free_port()
    with tempfile.TemporaryDirectory() as name, contextlib.ExitStack() as stack:
        tmp = Path(name)
        stack.enter_context(process(
            [sys.executable, str(ROOT / "benchmarks" / "gateway_bench_upstream.py"),
             "--port", str(up_port)], f"http://127.0.0.1:{up_port}/", tmp / "up.log"))
        config = gateway_config(tmp, f"http://127.0.0.1:{up_port}/v1", args.router)
        if args.router:
            config = with_learning(config, args.router)
        results = asyncio.run(measure(config, args.router, args.concurrency, args.rounds,
                                      args.batches))
    print(f"{'target':<22} {'median us/req':>14}  per round")
    for label, values in results.items():
        print(f"{label:<22} {statistics.median(values):14.0f}  "
              + " ".join(f"{v:.0f}" for v in values))
    print(f"concurrency {args.concurrency}, {args.rounds} alternating rounds of "
          f"{args.batches} batches; CPU of this process (app and log writer), not the "
          "upstream's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
