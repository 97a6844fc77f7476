"""Small HTTP helpers shared by the routes: bounded, timed body reading and JSON parsing,
and noticing a client that disconnects while it is being served."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.types import Receive

from switchman.gateway.errors import GatewayError, bad_request
from switchman.gateway.schema import loads

T = TypeVar("T")


def _too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"request body exceeds the limit of {limit} bytes",
                        code="request_too_large")


def header_map(scope: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers as a plain dict, answering ``get`` as ``request.headers`` does
    (the first value of a repeated header; names are lowercase in ASGI). One pass over the
    raw list instead of one scan per lookup: a chat request looks up nine, most of them
    absent, and each absent one costs Starlette a KeyError."""
    return {name.decode("latin-1"): value.decode("latin-1")
            for name, value in reversed(scope["headers"])}


async def read_body(request: Request, limit: int, timeout_s: float | None = None,
                    headers: Mapping[str, str] | None = None) -> bytes:
    """The body, refusing more than ``limit`` bytes without reading them all first, and a
    client that takes longer than ``timeout_s`` to send it (a slow-body attack).
    ``headers``: the request's, when the caller has them as a :func:`header_map`."""
    declared = (request.headers if headers is None else headers).get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError:
            raise bad_request("invalid Content-Length header") from None
    if timeout_s is None:
        return await _read_body(request.receive, limit)
    # asyncio.timeout's bookkeeping, done by hand: it costs a pinned request less than the
    # context manager.
    cancel = _Canceller()
    timer = asyncio.get_running_loop().call_later(timeout_s, cancel)
    try:
        return await _read_body(request.receive, limit)
    except asyncio.CancelledError:
        if cancel.caused():
            raise GatewayError(408, f"the request body did not arrive within {timeout_s:g} s",
                               code="request_timeout") from None
        raise
    finally:
        timer.cancel()


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The ASGI body messages joined (what Starlette's ``request.stream()`` yields, without
    its generator); a disconnect before the last one is the client's 400."""
    chunks, size = [], 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        elif kind == "http.disconnect":
            raise GatewayError(400, "client disconnected while sending the body",
                               code="client_disconnected")


async def read_json(request: Request, limit: int, timeout_s: float | None = None,
                    headers: Mapping[str, str] | None = None) -> Any:
    body = await read_body(request, limit, timeout_s, headers)
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
    cancel = _Canceller()
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        cancel()

    def start() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(watch())

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, start)
    try:
        return await work
    except asyncio.CancelledError:
        if cancel.caused():
            raise ClientGone from None
        raise
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


class _Canceller:
    """Cancels the task that made it, when called (a timer's or a watcher's callback), and
    tells that cancellation apart from any other: :meth:`caused` then takes it back, so
    the task goes on to answer (a 408, a 499) instead of ending cancelled."""

    __slots__ = ("_fired", "_task")

    def __init__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task, self._fired = task, False

    def __call__(self) -> None:
        self._fired = True
        self._task.cancel()

    def caused(self) -> bool:
        """Whether the task's CancelledError is this one's (then it is uncancelled)."""
        if self._fired:
            self._task.uncancel()
        return self._fired
