"""Small HTTP helpers shared by the routes: bounded, timed body reading and JSON parsing,
and noticing a client that disconnects while it is being served."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request

from switchman.gateway.errors import GatewayError, bad_request
from switchman.gateway.schema import loads

T = TypeVar("T")


def _too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"request body exceeds the limit of {limit} bytes",
                        code="request_too_large")


async def read_body(request: Request, limit: int, timeout_s: float | None = None) -> bytes:
    """The body, refusing more than ``limit`` bytes without reading them all first, and a
    client that takes longer than ``timeout_s`` to send it (a slow-body attack)."""
    if timeout_s is None:
        return await _read_body(request, limit)
    try:
        async with asyncio.timeout(timeout_s):
            return await _read_body(request, limit)
    except TimeoutError:
        raise GatewayError(408, f"the request body did not arrive within {timeout_s:g} s",
                           code="request_timeout") from None


async def _read_body(request: Request, limit: int) -> bytes:
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


async def read_json(request: Request, limit: int, timeout_s: float | None = None) -> Any:
    body = await read_body(request, limit, timeout_s)
    if not body:
        raise bad_request("the request body is empty; send a JSON object")
    try:
        return loads(body)
    except (ValueError, RecursionError) as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from None


class ClientGone(Exception):
    """The client disconnected while its request was being served."""


#: A request answered within this long never starts a disconnect watcher (most of them):
#: watching costs a task per request, and a slot held this long is no real loss.
WATCH_AFTER_S = 0.05


async def while_connected(request: Request, work: Awaitable[T]) -> T:
    """``await work``, cancelled with :class:`ClientGone` if the client disconnects first,
    so that a gone client's upstream call and slots are freed at once, not when the
    upstream answers. Only for after the body is read (the next ASGI message is then the
    disconnect)."""
    task = asyncio.current_task()
    assert task is not None
    gone = False
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    def start() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(watch())

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, start)
    try:
        return await work
    except asyncio.CancelledError:
        if gone:
            task.uncancel()
            raise ClientGone from None
        raise
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()
