"""Latency switchman adds in front of an upstream, at a given concurrency.

Runs a minimal OpenAI-compatible upstream (raw ASGI, fixed answer) and ``switchman serve``
in separate processes, then sends the same requests directly and through the gateway
(routed by ``switchman/auto`` over a three-model pool) and reports the difference of the
latency percentiles. Issue 4's budget: p50 added latency <= 2 ms at concurrency 32.

    .venv/bin/python benchmarks/gateway_overhead.py [--requests 3000] [--concurrency 32]
                                                     [--stream] [--upstream-delay-ms 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

logger = logging.getLogger("gateway_overhead")

_ANSWER = json.dumps({
    "id": "up", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}).encode()
_CHUNKS = b"".join(
    b"data: " + json.dumps({"id": "up", "object": "chat.completion.chunk", "created": 1,
                            "model": "m", "choices": [{"index": 0, "delta": d,
                                                       "finish_reason": f}]}).encode() + b"\n\n"
    for d, f in [({"role": "assistant"}, None), ({"content": "ok"}, None), ({}, "stop")]
) + b"data: [DONE]\n\n"


_DELAY_S = float(os.environ.get("BENCH_UPSTREAM_DELAY_MS", "0")) / 1000


async def upstream_app(scope, receive, send) -> None:  # noqa: ANN001 (raw ASGI)
    """The fastest possible upstream, so the measurement is switchman's cost."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if _DELAY_S:
        await asyncio.sleep(_DELAY_S)
    stream = b'"stream": true' in body or b'"stream":true' in body
    payload = _CHUNKS if stream else _ANSWER
    kind = b"text/event-stream" if stream else b"application/json"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", kind)]})
    await send({"type": "http.response.body", "body": payload})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.2)
    raise TimeoutError(url)


@contextlib.contextmanager
def process(cmd: list[str], ready_url: str) -> Iterator[None]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(ready_url)
        yield
    finally:
        proc.terminate()
        proc.wait(15)


class RawClient:
    """A minimal keep-alive HTTP/1.1 POST client on asyncio streams.

    httpx costs ~1.5-2.5 ms of CPU per request on a small machine, which would make the
    load generator, not the gateway, the bottleneck being measured.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json"
                          b"\r\nContent-Length: %d\r\n\r\n%s"
                          % (path.encode(), self.host.encode(), len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        headers = head.lower()
        if b"transfer-encoding: chunked" in headers:
            data = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    return status, data
                data += chunk[:-2]
        length = int(headers.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def load(url: str, body: dict, n: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    queue = iter(range(n))
    parsed = httpx.URL(url)
    payload = json.dumps(body).encode()

    async def worker() -> None:
        client = RawClient(parsed.host, parsed.port or 80)
        try:
            for _ in queue:
                t0 = time.perf_counter()
                status, data = await client.post(parsed.raw_path.decode(), payload)
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    raise RuntimeError(f"{url}: {status} {data[:200]!r}")
        finally:
            client.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def percentiles(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100)
    return {"p50": q[49] * 1000, "p95": q[94] * 1000, "p99": q[98] * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--upstream-delay-ms", type=float, default=0.0,
                        help="simulated model latency (realistic load is not CPU-bound)")
    parser.add_argument("--upstream-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.upstream_port:  # child mode: serve the upstream
        import uvicorn

        uvicorn.run(upstream_app, host="127.0.0.1", port=args.upstream_port, log_level="error",
                    access_log=False)
        return 0

    up_port, gw_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        models = [{"name": n, "endpoint": upstream, "input_per_mtok": p, "output_per_mtok": p,
                   "quality_prior": q} for n, p, q in
                  [("small", 0.1, 0.3), ("medium", 1, 0.6), ("large", 10, 0.9)]]
        config.write_text(yaml.safe_dump({"models": models, "log": {
            "path": str(Path(tmp) / "log.sqlite")}}))
        body = {"model": "switchman/auto", "stream": args.stream, "max_tokens": 16,
                "messages": [{"role": "system", "content": "You are terse."},
                             {"role": "user", "content": "What is the capital of France?"}]}
        os.environ["BENCH_UPSTREAM_DELAY_MS"] = str(args.upstream_delay_ms)
        env_cmd = [sys.executable, __file__, "--upstream-port", str(up_port)]
        serve = [sys.executable, "-m", "switchman.gateway", "serve", "--config", str(config),
                 "--port", str(gw_port)]
        with process(env_cmd, f"http://127.0.0.1:{up_port}/"), \
                process(serve, f"http://127.0.0.1:{gw_port}/healthz"):
            direct_url = f"{upstream}/chat/completions"
            gateway_url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
            warm = min(300, args.requests)
            asyncio.run(load(direct_url, {**body, "model": "medium"}, warm, args.concurrency))
            asyncio.run(load(gateway_url, body, warm, args.concurrency))
            direct = asyncio.run(load(direct_url, {**body, "model": "medium"}, args.requests,
                                      args.concurrency))
            t0 = time.perf_counter()
            via = asyncio.run(load(gateway_url, body, args.requests, args.concurrency))
            elapsed = time.perf_counter() - t0
    d, g = percentiles(direct), percentiles(via)
    result = {"concurrency": args.concurrency, "requests": args.requests,
              "stream": args.stream, "upstream_delay_ms": args.upstream_delay_ms,
              "direct_ms": d, "gateway_ms": g,
              "added_ms": {k: g[k] - d[k] for k in d},
              "gateway_rps": args.requests / elapsed, "cpus": os.cpu_count()}
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
