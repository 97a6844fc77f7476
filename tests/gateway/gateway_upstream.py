"""A small, deterministic upstream the tests run on 127.0.0.1: OpenAI-compatible + Anthropic.

The answer depends only on the request, so tests can assert exact routing, pass-through
and accounting: it names the upstream model, echoes the body it received (``echo``), reports
fixed usage (100 prompt / 20 completion tokens) and fails on request for models named
``fail-<status>``. The Anthropic side replays the recorded shapes under fixtures/anthropic.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    data = {"id": "up-stream-1", "object": "chat.completion.chunk", "created": 1,
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _tool_call(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = body.get("tools")
    if tools and body.get("tool_choice") == "required":
        return {"id": "call_1", "type": "function",
                "function": {"name": tools[0]["function"]["name"], "arguments": '{"x": 1}'}}
    return None


async def _stream(model: str, body: dict[str, Any]):
    yield _chunk(model, {"role": "assistant", "content": ""})
    if model == "midstream-error":
        yield _chunk(model, {"content": "partial"})
        yield b'data: {"error": {"message": "upstream exploded", "type": "server_error"}}\n\n'
        return
    if model == "slow-stream":
        for _ in range(100):
            yield _chunk(model, {"content": "."})
            await asyncio.sleep(0.1)
    call = _tool_call(body)
    if call:
        yield _chunk(model, {"tool_calls": [{"index": 0, **call}]})
    else:
        for i, word in enumerate(f"answer from {model}".split(" ")):
            yield _chunk(model, {"content": word if i == 0 else " " + word})
            await asyncio.sleep(0)
    yield _chunk(model, {}, "tool_calls" if call else "stop")
    if (body.get("stream_options") or {}).get("include_usage") and model != "no-usage":
        usage = {"id": "up-stream-1", "object": "chat.completion.chunk", "created": 1,
                 "model": model, "choices": [], "usage": USAGE}
        yield b"data: " + json.dumps(usage).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


async def chat(request: Request) -> Response:
    body = await request.json()
    request.app.state.received.append({"body": body, "headers": dict(request.headers)})
    model = body.get("model", "")
    if model.startswith("fail-"):
        status = int(model[5:])
        return JSONResponse({"error": {"message": f"injected failure {status}",
                                       "type": "server_error"}}, status_code=status)
    if model == "echo-key-encoded-401":  # the key upper-cased, base64- and %-encoded
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        forms = [key.upper(), base64.b64encode(key.encode()).decode(),
                 urllib.parse.quote(key, safe=""), key.encode().hex()]
        return JSONResponse({"error": {"message": "bad key: " + " / ".join(forms)}},
                            status_code=401)
    if model == "echo-key-401":
        return JSONResponse({"error": {"message": "Incorrect API key provided: "
                                       + request.headers.get("authorization", "")}},
                            status_code=401)
    if body.get("stream"):
        return StreamingResponse(_stream(model, body), media_type="text/event-stream")
    call = _tool_call(body)
    message: dict[str, Any] = {"role": "assistant",
                               "content": None if call else f"answer from {model}"}
    if call:
        message["tool_calls"] = [call]
    return JSONResponse({
        "id": "up-123", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": "tool_calls" if call else "stop"}],
        "usage": USAGE, "echo": body})


async def anthropic_messages(request: Request) -> Response:
    body = await request.json()
    request.app.state.received.append({"body": body, "headers": dict(request.headers)})
    if body.get("model") == "claude-overloaded":
        return Response((FIXTURES / "error_overloaded.json").read_bytes(), status_code=529,
                        media_type="application/json")
    if body.get("stream"):
        name = "stream_tool_use.sse" if body.get("tools") else "stream_text.sse"
        if body.get("model") == "claude-stream-error":
            name = "stream_error.sse"
        return Response((FIXTURES / name).read_bytes(), media_type="text/event-stream")
    name = "response_tool_use.json" if body.get("tools") else "response_text.json"
    return Response((FIXTURES / name).read_bytes(), media_type="application/json")


def create_upstream() -> Starlette:
    app = Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/anthropic/v1/messages", anthropic_messages, methods=["POST"]),
    ])
    app.state.received = []
    return app


class ServerThread:
    """Run an ASGI app with uvicorn in a background thread (lifespan included)."""

    def __init__(self, app: Any, port: int, **options: Any) -> None:
        self.app = app
        self.port = port
        options = {"lifespan": "on", **options}
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning", **options))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        for _ in range(2400):  # 2 min: loading a trained router is slow on a busy machine
            if self.server.started:
                return self
            if not self.thread.is_alive():
                raise RuntimeError("server thread died during start-up")
            threading.Event().wait(0.05)
        raise TimeoutError("server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
