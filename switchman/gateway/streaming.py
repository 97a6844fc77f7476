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

from switchman.gateway.accounting import Usage, cost_of, usage_of
from switchman.gateway.executor import Outcome
from switchman.gateway.providers.base import UpstreamError
from switchman.gateway.reporting import account, decision_headers, record_for
from switchman.gateway.routing import Decision
from switchman.gateway.schema import ChatRequest
from switchman.gateway.service import Gateway
from switchman.gateway.sticky import ConversationKey

logger = logging.getLogger(__name__)

_DONE = b"data: [DONE]\n\n"


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


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
        if self.upstream_id is None:
            self.upstream_id = chunk.get("id")
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
        if not self.req.include_usage:
            chunk.pop("usage", None)
            if not choices:
                return None  # the usage-only chunk we asked for, not the client
        elif usage:
            chunk["switchman"] = {"cost_usd": cost_of(self.model, self.usage())}
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
    """Finishes a stream exactly once, however it ends: accounting and the log row, then the
    upstream connection and the in-flight slots it held."""

    def __init__(self, gw: Gateway, request_id: str, t0: float, req: ChatRequest,
                 decision: Decision, outcome: Outcome, conv: ConversationKey, key: str | None,
                 release_gateway: Callable[[], None] | None) -> None:
        self.gw, self.request_id, self.t0, self.req = gw, request_id, t0, req
        self.decision, self.outcome, self.conv, self.key = decision, outcome, conv, key
        self.relay = _Relay(request_id, req, outcome)
        self.release_gateway = release_gateway
        self.finished = False
        self.closed = False

    def finish(self, status: int, error_kind: str | None, errors: list[str]) -> None:
        if not self.finished:
            self.finished = True
            _finish(self.gw, self.request_id, self.t0, self.req, self.decision, self.outcome,
                    self.conv, self.key, self.relay, status, error_kind, errors)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.outcome.chunks is not None:
                with contextlib.suppress(Exception):
                    await self.outcome.chunks.aclose()  # type: ignore[attr-defined]
        finally:
            for release in (self.outcome.release, self.release_gateway):
                if release is not None:
                    release()


def _incident(gw: Gateway, request_id: str, err: UpstreamError, sent: int) -> bytes:
    """A failure after bytes reached the client: log it loudly, end with an error event.

    No ``[DONE]`` follows: clients that wait for it (the OpenAI SDK raises on the error
    event) must not take the partial answer for a complete one.
    """
    logger.warning("stream incident: request %s, model %s failed after %d chunks (%s): %s",
                   request_id, err.model, sent, err.label, err.message)
    gw.metrics.incidents.labels(err.model, err.label).inc()
    gw.metrics.upstream_errors.labels(err.model, err.label).inc()
    gw.executor.stream_failed(err.model)
    return _event({"error": {"message": f"upstream model {err.model} failed mid-stream "
                             f"after {sent} chunks ({err.label}): {err.message}; the answer "
                             "is incomplete", "type": "upstream_error", "param": None,
                             "code": "upstream_failed_mid_stream"}})


async def _relay(end: _StreamEnd) -> AsyncIterator[bytes]:
    relay, outcome, req = end.relay, end.outcome, end.req
    status, error_kind, errors = 200, None, list(outcome.errors)
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
        yield _incident(end.gw, end.request_id, err, sent)
    except (asyncio.CancelledError, GeneratorExit):
        status, error_kind = 499, "client_disconnected"
        raise
    finally:
        # Account first: closing the upstream may itself be interrupted by cancellation.
        end.finish(status, error_kind, errors)
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
            if not self._end.finished:
                self._end.finish(499, "client_disconnected", list(self._end.outcome.errors))
            await self._end.close()


def _finish(gw: Gateway, request_id: str, t0: float, req: ChatRequest, decision: Decision,
            outcome: Outcome, conv: ConversationKey, key: str | None, relay: _Relay,
            status: int, error_kind: str | None, errors: list[str]) -> None:
    usage = relay.usage()
    cost = cost_of(outcome.model, usage)
    latency = time.perf_counter() - t0
    account(gw, decision.router, outcome.model.name, usage.prompt_tokens,
            usage.completion_tokens, cost, status, latency)
    if status == 200:
        gw.memory.put(conv.after(relay.reply()), outcome.model.name)
    else:
        gw.metrics.errors.labels(error_kind or "stream_error").inc()
    record = record_for(gw, request_id, t0, req, decision, key, status)
    record.model, record.tried, record.errors = outcome.model.name, outcome.tried, errors
    record.reason, record.error_kind = outcome.reason, error_kind
    record.overhead_ms = (outcome.upstream_start - t0) * 1000
    record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    record.cost_usd, record.cost_source = cost, usage.source
    record.upstream_id = relay.upstream_id
    gw.log.record(record)


def stream_response(gw: Gateway, request_id: str, t0: float, req: ChatRequest,
                    decision: Decision, outcome: Outcome, conv: ConversationKey,
                    key: str | None,
                    release_gateway: Callable[[], None] | None = None) -> StreamingResponse:
    """The SSE response; it owns ``outcome``'s upstream stream and in-flight slots."""
    estimate = decision.estimated_cost.get(outcome.model.name, 0.0)
    headers = decision_headers(request_id, decision, outcome, estimate)
    headers["x-switchman-cost-source"] = "estimate"
    headers["cache-control"] = "no-cache"
    headers["x-accel-buffering"] = "no"
    end = _StreamEnd(gw, request_id, t0, req, decision, outcome, conv, key, release_gateway)
    return _GuardedStreamingResponse(end, headers)
