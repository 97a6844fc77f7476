"""Relay an upstream stream to the client as OpenAI SSE, accounting as it goes.

Headers go out before the answer exists, so ``x-switchman-cost-usd`` of a stream is the
up-front estimate (``x-switchman-cost-source: estimate``); the billed figure goes to the log,
and to the final usage chunk (``switchman.cost_usd``) when the client asked for usage.
A failure after the first chunk cannot fall back (the client already has part of an
answer), so it ends the stream with an OpenAI-style ``error`` event and no ``[DONE]``, and
is logged as an incident.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse

from switchman.gateway.context import Outcome, RequestContext
from switchman.gateway.execute.providers.base import StreamChunk, UpstreamError
from switchman.gateway.record.accounting import Usage, cost_of, usage_of
from switchman.gateway.record.settle import Settler, decision_headers
from switchman.gateway.schema import ChatRequest

logger = logging.getLogger(__name__)

_DONE = b"data: [DONE]\n\n"
_ABSENT = object()


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _spliced(raw: bytes, *changes: tuple[Any, str]) -> bytes | None:
    """``raw`` with each (old, new) string value replaced, or None where that is not safe.

    A JSON string token (quotes included) cannot occur inside another string, whose quotes
    are escaped; so a token found exactly once is the value itself. Anything else (absent,
    encoded differently, repeated) falls back to encoding the chunk.
    """
    for old, new in changes:
        if not isinstance(old, str):
            return None
        token = json.dumps(old).encode()
        if raw.count(token) != 1:
            return None
        raw = raw.replace(token, json.dumps(new).encode())
    return raw


class _Relay:
    """Rewrites chunks (id, model) and accumulates the answer for accounting and stickiness."""

    def __init__(self, request_id: str, req: ChatRequest, outcome: Outcome) -> None:
        self.request_id = request_id
        self.req = req
        self.model = outcome.model
        self.text: list[str] = []
        self.tools: dict[int, dict[str, Any]] = {}
        self.reported: dict[str, Any] | None = None
        self.upstream_id: str | None = None
        self.last: dict[str, Any] | None = None

    def chunk(self, chunk: dict[str, Any]) -> bytes | None:
        old_id, old_model = chunk.get("id"), chunk.get("model")
        if self.upstream_id is None:
            self.upstream_id = old_id
        chunk["id"] = self.request_id
        chunk["model"] = self.model.name
        self.last = chunk
        usage = chunk.get("usage")
        if usage:
            self.reported = usage
        choices = chunk.get("choices")
        if choices:
            delta = choices[0].get("delta") or {}
            content = delta.get("content")
            if content:
                self.text.append(content)
            for call in delta.get("tool_calls") or []:
                entry = self.tools.setdefault(call.get("index", 0), {"name": "", "args": []})
                fn = call.get("function") or {}
                entry["name"] += fn.get("name") or ""
                entry["args"].append(fn.get("arguments") or "")
        reshaped = False  # whether more than id and model changed
        if not self.req.include_usage:
            reshaped = chunk.pop("usage", _ABSENT) is not _ABSENT
            if not choices:
                return None  # the usage-only chunk we asked for, not the client
        elif usage:
            chunk["switchman"] = {"cost_usd": cost_of(self.model, self.usage())}
            reshaped = True
        if not reshaped and isinstance(chunk, StreamChunk):
            spliced = _spliced(chunk.raw, (old_id, self.request_id), (old_model, self.model.name))
            if spliced is not None:
                return b"data: " + spliced + b"\n\n"
        return _event(chunk)

    def usage(self) -> Usage:
        chars = sum(len(t) for t in self.text) + sum(
            len("".join(e["args"])) for e in self.tools.values())
        return usage_of(self.reported, self.req.prompt_tokens, chars)

    def synthetic_usage_chunk(self) -> bytes:
        """For clients that asked for usage from an upstream that sent none (estimated)."""
        usage = self.usage()
        return _event({
            "id": self.request_id, "object": "chat.completion.chunk",
            "created": (self.last or {}).get("created", int(time.time())),
            "model": self.model.name, "choices": [],
            "usage": {"prompt_tokens": usage.prompt_tokens,
                      "completion_tokens": usage.completion_tokens,
                      "total_tokens": usage.prompt_tokens + usage.completion_tokens},
            "switchman": {"cost_usd": cost_of(self.model, usage), "usage_estimated": True}})

    def reply(self) -> dict[str, Any]:
        calls = [{"function": {"name": e["name"], "arguments": "".join(e["args"])}}
                 for _, e in sorted(self.tools.items())]
        return {"role": "assistant", "content": "".join(self.text), "tool_calls": calls}


class _StreamEnd:
    """Finishes a stream exactly once, however it ends: the request is settled first, then
    the upstream connection and the model's in-flight slot it held are released."""

    def __init__(self, ctx: RequestContext, outcome: Outcome, settler: Settler,
                 on_failure: Callable[[str], None]) -> None:
        assert ctx.req is not None
        self.ctx, self.outcome, self.settler = ctx, outcome, settler
        self.on_failure = on_failure
        self.relay = _Relay(ctx.request_id, ctx.req, outcome)
        self.closed = False

    def finish(self, status: int, error_kind: str | None) -> None:
        ctx, relay = self.ctx, self.relay
        if ctx.settled:
            return
        usage = relay.usage()
        ctx.prompt_tokens, ctx.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        ctx.cost_usd, ctx.cost_source = cost_of(self.outcome.model, usage), usage.source
        ctx.upstream_id, ctx.error_kind = relay.upstream_id, error_kind
        if status == 200:
            ctx.reply = relay.reply()
        self.settler.settle(ctx, status)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.outcome.chunks is not None:
                with contextlib.suppress(Exception):
                    await self.outcome.chunks.aclose()  # type: ignore[attr-defined]
        finally:
            if self.outcome.release is not None:
                self.outcome.release()
            self.ctx.free_slot()


def _incident(end: _StreamEnd, err: UpstreamError, sent: int) -> bytes:
    """A failure after bytes reached the client: log it loudly, end with an error event.

    No ``[DONE]`` follows: clients that wait for it (the OpenAI SDK raises on the error
    event) must not take the partial answer for a complete one.
    """
    logger.warning("stream incident: request %s, model %s failed after %d chunks (%s): %s",
                   end.ctx.request_id, err.model, sent, err.label, err.message)
    metrics = end.settler.metrics
    metrics.child(metrics.incidents, err.model, err.label).inc()
    metrics.child(metrics.upstream_errors, err.model, err.label).inc()
    end.on_failure(err.model)
    return _event({"error": {"message": f"upstream model {err.model} failed mid-stream "
                             f"after {sent} chunks ({err.label}): {err.message}; the answer "
                             "is incomplete", "type": "upstream_error", "param": None,
                             "code": "upstream_failed_mid_stream"}})


async def _relay(end: _StreamEnd) -> AsyncIterator[bytes]:
    relay, outcome, req, errors = end.relay, end.outcome, end.relay.req, end.ctx.errors
    status, error_kind = 200, None
    chunks, sent = outcome.chunks, 0
    try:
        if outcome.first_chunk is not None:
            data = relay.chunk(outcome.first_chunk)
            if data is not None:
                sent += 1
                yield data
        if chunks is not None:
            async for chunk in chunks:
                data = relay.chunk(chunk)
                if data is not None:
                    sent += 1
                    yield data
        if req.include_usage and relay.reported is None:
            yield relay.synthetic_usage_chunk()
        yield _DONE
    except UpstreamError as err:
        status, error_kind = 502, err.label
        errors.append(f"{err.model}: {err.label}: {err.message} (after {sent} chunks)")
        yield _incident(end, err, sent)
    except (asyncio.CancelledError, GeneratorExit):
        status, error_kind = 499, "client_disconnected"
        raise
    finally:
        # Account first: closing the upstream may itself be interrupted by cancellation.
        end.finish(status, error_kind)
        await end.close()


class _GuardedStreamingResponse(StreamingResponse):
    """A StreamingResponse that settles its request even if the body never ran (client
    gone before the first byte): exactly one log row, no leaked slot or connection."""

    def __init__(self, end: _StreamEnd, headers: dict[str, str]) -> None:
        super().__init__(_relay(end), media_type="text/event-stream", headers=headers)
        self._end = end

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._end.finish(499, "client_disconnected")
            await self._end.close()


def stream_response(ctx: RequestContext, outcome: Outcome, settler: Settler,
                    on_failure: Callable[[str], None]) -> StreamingResponse:
    """The SSE response; it owns ``outcome``'s upstream stream, its in-flight slot and the
    request's gateway slot. ``on_failure(model)`` hears of a stream that broke mid-way."""
    decision = ctx.decision
    assert decision is not None
    estimate = decision.estimated_cost.get(outcome.model.name, 0.0)
    headers = decision_headers(ctx.request_id, decision, outcome, estimate)
    headers["x-switchman-cost-source"] = "estimate"
    headers["cache-control"] = "no-cache"
    headers["x-accel-buffering"] = "no"
    end = _StreamEnd(ctx, outcome, settler, on_failure)
    return _GuardedStreamingResponse(end, headers)
