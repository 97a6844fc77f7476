"""The cheapest possible Python gateway: a pass-through proxy on switchman's own HTTP stack.

benchmarks/gateway_overhead.py runs it next to switchman as the "python floor": uvicorn
(uvloop + httptools) serves a bare ASGI app that forwards each POST body unread to the
upstream over one pooled aiohttp session and returns the upstream's bytes. No routing, no
JSON parsing, no logging, no accounting. Whatever latency it adds at a given concurrency is
what the HTTP stack alone costs on this machine, a floor under any gateway built on it.

    python benchmarks/gateway_floor_proxy.py --port 9001 --upstream http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import aiohttp
import uvicorn


class FloorProxy:
    """ASGI app: POST anything -> the same path on the upstream; GET -> 200 (readiness)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] != "POST":
            await _reply(send, 200, b"ok")
            return
        assert self.session is not None
        url = self.upstream + scope["path"].removeprefix("/v1")
        async with self.session.post(url, data=body,
                                     headers={"content-type": "application/json"}) as resp:
            await _reply(send, resp.status, await resp.read())

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _reply(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="upstream base URL, e.g. .../v1")
    args = parser.parse_args()
    uvicorn.run(FloorProxy(args.upstream), host="127.0.0.1", port=args.port, loop="uvloop",
                http="httptools", lifespan="on", log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
