"""Small HTTP helpers shared by the routes: bounded body reading and JSON parsing."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from switchman.gateway.errors import GatewayError, bad_request


def _too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"request body exceeds the limit of {limit} bytes",
                        code="request_too_large")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes without reading them all first."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError:
            raise bad_request("invalid Content-Length header") from None
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise GatewayError(400, "client disconnected while sending the body",
                           code="client_disconnected") from None
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> Any:
    body = await read_body(request, limit)
    if not body:
        raise bad_request("the request body is empty; send a JSON object")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from None
