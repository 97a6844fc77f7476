"""The instant upstream of benchmarks/gateway_overhead.py: a raw asyncio HTTP/1.1 server.

It answers every POST with a fixed chat completion (or a fixed stream when the body asks
for one) without a framework, so that it costs as little CPU as possible on a machine the
gateway, the load generator and it share.

    python benchmarks/gateway_bench_upstream.py --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

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


def _response(body: bytes, kind: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
            % (kind, len(body), body))


_PLAIN = _response(_ANSWER, b"application/json")
_STREAM = _response(_CHUNKS, b"text/event-stream")
_HEALTH = _response(b"{}", b"application/json")


class Upstream(asyncio.Protocol):
    """Keep-alive HTTP/1.1 with Content-Length bodies (what every client here sends)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:  # uvloop's is no asyncio.Transport
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                length = int(head[marker + 15:].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4:end + 4 + length]
            self.buffer = self.buffer[end + 4 + length:]
            assert self.transport is not None
            if head.startswith(b"get"):
                self.transport.write(_HEALTH)
            elif b'"stream": true' in body or b'"stream":true' in body:
                self.transport.write(_STREAM)
            else:
                self.transport.write(_PLAIN)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.port))
    except ImportError:
        asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
