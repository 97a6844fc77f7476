"""Relay an upstream stream to the client as OpenAI SSE, accounting as it goes.

Headers go out before the answer exists, so ``x-switchman-cost-usd`` of a stream is the
up-front estimate (``x-switchman-cost-source: estimate``); the billed figure goes to the log,
and to the final usage chunk (``switchman.cost_usd``) when the client asked for usage.
A failure after the first chunk cannot fall back (the client already has part of an
answer), so it ends the stream with an OpenAI-style ``error`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
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


async def _relay(gw: Gateway, request_id: str, t0: float, req: ChatRequest,
                 decision: Decision, outcome: Outcome, conv: ConversationKey,
                 key: str | None) -> AsyncIterator[bytes]:
    relay = _Relay(request_id, req, outcome)
    status, error_kind, errors = 200, None, list(outcome.errors)
    chunks = outcome.chunks
    try:
        if outcome.first_chunk is not None:
            data = relay.chunk(outcome.first_chunk)
            if data is not None:
                yield data
        if chunks is not None:
            async for chunk in chunks:
                data = relay.chunk(chunk)
                if data is not None:
                    yield data
        if req.include_usage and relay.reported is None:
            yield relay.synthetic_usage_chunk()
        yield _DONE
    except UpstreamError as err:
        status, error_kind = 502, err.label
        errors.append(f"{err.model}: {err.label}: {err.message}")
        gw.metrics.upstream_errors.labels(err.model, err.label).inc()
        yield _event({"error": {"message": f"upstream model {err.model} failed mid-stream "
                                f"({err.label}): {err.message}", "type": "upstream_error",
                                "param": None, "code": "upstream_failed"}})
        yield _DONE
    except (asyncio.CancelledError, GeneratorExit):
        status, error_kind = 499, "client_disconnected"
        raise
    finally:
        # Account first: closing the upstream may itself be interrupted by cancellation.
        _finish(gw, request_id, t0, req, decision, outcome, conv, key, relay, status,
                error_kind, errors)
        if chunks is not None:
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]


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
                    key: str | None) -> StreamingResponse:
    estimate = decision.estimated_cost.get(outcome.model.name, 0.0)
    headers = decision_headers(request_id, decision, outcome, estimate)
    headers["x-switchman-cost-source"] = "estimate"
    headers["cache-control"] = "no-cache"
    headers["x-accel-buffering"] = "no"
    return StreamingResponse(_relay(gw, request_id, t0, req, decision, outcome, conv, key),
                             media_type="text/event-stream", headers=headers)
