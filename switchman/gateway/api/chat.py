"""POST /v1/chat/completions: admit, parse, route, execute, answer, settle.

The response body is the upstream's, with ``id`` set to switchman's request id (the id
feedback refers to) and ``model`` set to the pool model that answered. Decision headers
tell the caller what happened without parsing anything. Every way a request can end goes
through one :meth:`Settler.settle <switchman.gateway.record.settle.Settler.settle>`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from switchman.gateway.api.http import ClientGone, header_map, read_json, while_connected
from switchman.gateway.context import Outcome, RequestContext
from switchman.gateway.errors import GatewayError, error_response
from switchman.gateway.execute.streaming import stream_response
from switchman.gateway.record.accounting import cost_of, usage_of
from switchman.gateway.record.settle import Settler, decision_headers
from switchman.gateway.schema import dumps, parse_chat_request
from switchman.gateway.service import Gateway

logger = logging.getLogger(__name__)


#: Random bytes per request id, and read from the OS at once: one ``getrandom`` call per
#: 1,024 requests instead of one per request (a system call was ~2% of a pinned request's
#: CPU).
_RANDOM_BYTES = 8
_ID_BYTES = _RANDOM_BYTES * 1024
_random = bytearray()
# A forked worker must not hand out the ids its parent's buffer still holds.
os.register_at_fork(after_in_child=_random.clear)


def new_request_id() -> str:
    """A fresh id: the time in milliseconds, then 8 bytes from the OS's CSPRNG, as hex.

    The time first makes ids ascend, so the decision log's index on them grows at its end
    instead of at random pages: a logged row costs SQLite about half as much (~35 -> ~16 us
    measured). The random part keeps ids unique across processes and replicas and not
    guessable (feedback is accepted from the id's own caller anyway).
    """
    if not _random:
        _random.extend(os.urandom(_ID_BYTES))
    chunk = _random[-_RANDOM_BYTES:]
    del _random[-_RANDOM_BYTES:]
    return f"chatcmpl-sw{time.time_ns() // 1_000_000:011x}{chunk.hex()}"


async def chat_completions(request: Request) -> Response:
    """Authenticate, read the body, then take a gateway slot for as long as the answer
    lasts: callers without a valid key are refused before load shedding, and a client
    sending its body slowly holds no slot meanwhile."""
    gw: Gateway = request.app.state.gateway
    server = gw.config.server
    ctx = RequestContext(new_request_id(), time.perf_counter())
    headers = header_map(request.scope)
    try:
        ctx.key = gw.authenticate(headers.get("authorization"))
        body = await read_json(request, server.max_body_bytes, server.body_timeout_s, headers)
        if not gw.in_flight.try_acquire():
            gw.metrics.rejected.inc()  # a 429 now beats an unbounded queue
            raise GatewayError(
                429, f"switchman is at its limit of {gw.in_flight.limit} requests in flight; "
                "retry shortly", type="rate_limit_error", code="overloaded",
                headers={"retry-after": str(server.overload_retry_after_s)})
        ctx.release_slot = gw.in_flight.release
        return await _handle(gw, request, headers, ctx, body)
    except GatewayError as err:
        return _refuse(gw.settler, ctx, err)
    except ClientGone:
        ctx.error_kind = "client_disconnected"
        gw.settler.settle(ctx, 499)
        return Response(status_code=499)  # nobody reads it: the client is gone
    except Exception:
        logger.exception("unexpected error serving request %s", ctx.request_id)
        return _refuse(gw.settler, ctx, GatewayError(
            500, "internal error in switchman (see the gateway log)", type="server_error",
            code="internal_error"))
    finally:
        if not ctx.settled and ctx.outcome is None:
            ctx.free_slot()  # cancelled by the server before anything was decided


def _refuse(settler: Settler, ctx: RequestContext, err: GatewayError) -> Response:
    ctx.failed(err)
    settler.settle(ctx, err.status)
    return error_response(err, {"x-switchman-request-id": ctx.request_id})


async def _handle(gw: Gateway, request: Request, headers: dict[str, str], ctx: RequestContext,
                  body: Any) -> Response:
    ctx.req = parse_chat_request(body, headers, gw.routing.known_names)
    ctx.decision = await gw.routing.decide(ctx)
    outcome = await while_connected(request, gw.executor.run(ctx))
    ctx.answered_by(outcome)
    if ctx.req.stream:
        return stream_response(ctx, outcome, gw.settler, gw.executor.stream_failed)
    return _complete(ctx, outcome, gw.settler)


def _complete(ctx: RequestContext, outcome: Outcome, settler: Settler) -> Response:
    """The upstream's answer as the client's, its usage and cost filled in and settled."""
    assert ctx.req is not None and ctx.decision is not None
    data: dict[str, Any] = outcome.response or {}
    model = outcome.model
    ctx.upstream_id = data.get("id")
    data["id"] = ctx.request_id
    data["model"] = model.name
    choices = data.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    message = first.get("message") if isinstance(first.get("message"), dict) else {}
    content = message.get("content")
    chars = len(content) if isinstance(content, str) else 0
    for call in message.get("tool_calls") or []:
        chars += len(str((call.get("function") or {}).get("arguments", "")))
    usage = usage_of(data.get("usage"), ctx.req.prompt_tokens, chars)
    if usage.source != "usage":
        data["usage"] = {"prompt_tokens": usage.prompt_tokens,
                         "completion_tokens": usage.completion_tokens,
                         "total_tokens": usage.prompt_tokens + usage.completion_tokens}
    ctx.prompt_tokens, ctx.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    ctx.cost_usd, ctx.cost_source = cost_of(model, usage), usage.source
    payload = dumps(data)
    ctx.reply = {"role": "assistant", "content": content,
                 "tool_calls": message.get("tool_calls")}
    settler.settle(ctx, 200)
    return Response(payload, headers=decision_headers(ctx.request_id, ctx.decision, outcome,
                                                      ctx.cost_usd),
                    media_type="application/json")
