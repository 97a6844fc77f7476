"""A fault-injecting OpenAI-compatible upstream, run as its own process on 127.0.0.1.

The fault comes from the upstream model name the gateway sends (so the gateway's pool
configuration decides which model misbehaves), or from a script posted to ``/control``
(``{"model": m, "script": ["503", "ok"]}``: the next requests for ``m`` behave in that
order, then the name decides again). ``GET /stats`` counts the calls per model, which is
how tests check how many attempts the gateway made; ``POST /reset`` clears both.

Behaviours (a name ``<behaviour>`` or ``<behaviour>@<anything>`` to have distinct models):

* ``ok``: a normal answer (streamed if asked);     * ``slow-<ms>``: ``ok`` after a pause;
* ``status-<code>[-ra-<seconds>]``: that HTTP error (with ``Retry-After``);
* ``hang``: never answers;   * ``close``: closes the connection without answering;
* ``malformed``: a 200 whose body is not JSON (for streams: an event that is not JSON);
* ``cut-<n>``: a stream that breaks (connection closed) after n chunks; non-streaming:
  a body cut short of its Content-Length;
* ``chaos-<seed>``: a random choice among the above, for the soak test.

    python tests/gateway/fault_upstream.py --port 8123
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections import Counter, deque
from typing import Any

from aiohttp import web

USAGE = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
_CHAOS = ["ok"] * 80 + ["status-503"] * 5 + ["status-429-ra-0"] * 3 + ["close"] * 3 + \
    ["malformed"] * 2 + ["cut-2"] * 4 + ["status-500"] * 2 + ["slow-1500"]


def _answer(model: str) -> dict[str, Any]:
    return {"id": "up-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant",
                                                 "content": f"answer from {model}"},
                         "finish_reason": "stop"}], "usage": USAGE}


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    data = {"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _stream_chunks(model: str) -> list[bytes]:
    words = ["answer", " from", f" {model}"]
    usage = {"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": model,
             "choices": [], "usage": USAGE}
    return [_chunk(model, {"role": "assistant", "content": ""}),
            *(_chunk(model, {"content": w}) for w in words), _chunk(model, {}, "stop"),
            b"data: " + json.dumps(usage).encode() + b"\n\n", b"data: [DONE]\n\n"]


class FaultUpstream:
    def __init__(self) -> None:
        self.scripts: dict[str, deque[str]] = {}
        self.calls: Counter[str] = Counter()
        self.rng = random.Random(0)

    def behaviour(self, model: str) -> str:
        script = self.scripts.get(model)
        if script:
            return script.popleft()
        name = model.split("@", 1)[0]
        if name.startswith("chaos"):
            return self.rng.choice(_CHAOS)
        return name

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = str(body.get("model", ""))
        self.calls[model] += 1
        stream = bool(body.get("stream"))
        kind = self.behaviour(model)
        if kind.startswith("slow-"):
            await asyncio.sleep(int(kind[5:]) / 1000)
            kind = "ok"
        if kind == "ok":
            return await self._ok(request, model, stream)
        if kind.startswith("status-"):
            parts = kind.split("-")
            headers = {"retry-after": parts[3]} if len(parts) > 3 else {}
            return web.json_response({"error": {"message": f"injected {parts[1]}",
                                                "type": "server_error"}},
                                     status=int(parts[1]), headers=headers)
        if kind == "hang":
            await asyncio.sleep(3600)
        if kind == "close":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never sent: the connection is gone
        if kind == "malformed":
            if stream:
                response = web.StreamResponse(headers={"content-type": "text/event-stream"})
                await response.prepare(request)
                await response.write(b"data: {this is not json\n\n")
                await response.write_eof()
                return response
            return web.Response(body=b'{"id": "up-1", "choices": [', status=200,
                                content_type="application/json")
        if kind.startswith("cut-"):
            return await self._cut(request, model, stream, int(kind[4:]))
        return web.json_response({"error": {"message": f"unknown behaviour {kind!r}"}},
                                 status=400)

    async def _ok(self, request: web.Request, model: str, stream: bool) -> web.StreamResponse:
        if not stream:
            return web.json_response(_answer(model))
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for chunk in _stream_chunks(model):
            await response.write(chunk)
        await response.write_eof()
        return response

    async def _cut(self, request: web.Request, model: str, stream: bool,
                   n: int) -> web.StreamResponse:
        if stream:
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            for chunk in _stream_chunks(model)[:n]:
                await response.write(chunk)
            await asyncio.sleep(0.05)  # let the chunks leave before the connection dies
        else:
            body = json.dumps(_answer(model)).encode()
            response = web.StreamResponse(headers={"content-type": "application/json",
                                                   "content-length": str(len(body))})
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()
        return response

    async def control(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.scripts[data["model"]] = deque(data["script"])
        return web.json_response({"ok": True})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.calls))

    async def reset(self, request: web.Request) -> web.Response:
        self.scripts.clear()
        self.calls.clear()
        return web.json_response({"ok": True})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})


def make_app() -> web.Application:
    fu = FaultUpstream()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fu.chat)
    app.router.add_post("/control", fu.control)
    app.router.add_get("/stats", fu.stats)
    app.router.add_post("/reset", fu.reset)
    app.router.add_get("/health", fu.health)
    return app


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, print=None,
                access_log=None, handler_cancellation=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
