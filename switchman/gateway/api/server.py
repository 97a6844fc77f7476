"""How the gateway's HTTP server runs: uvicorn with a deadline for request headers.

uvicorn times out idle keep-alive connections but not a client that opens a connection and
never finishes its request headers (nor one that starts a second request on a kept-alive
connection and stalls): each such socket holds a file descriptor for ever, so a few thousand
of them exhaust the process. :class:`HeaderDeadlineProtocol` arms a timer when a connection
opens and when a request's first byte arrives, disarms it once the headers are complete, and
otherwise answers 408 and closes. The body has its own deadline, in :mod:`.http`.

It also writes each response in one piece: uvicorn writes an ASGI response's head and its
body as two ``send`` system calls (and so two TCP segments the client reads apart);
:class:`CoalescingTransport` joins what one step of the event loop writes.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from switchman.config import Config

_BODY = json.dumps({"error": {"message": "request headers not received in time",
                              "type": "invalid_request_error", "param": None,
                              "code": "request_timeout"}}).encode()
_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                     b"connection: close\r\ncontent-length: " + str(len(_BODY)).encode()
                     + b"\r\n\r\n" + _BODY)


class CoalescingTransport:
    """A transport whose writes within one turn of the event loop go out as one.

    The first write of a turn schedules a flush with ``call_soon``; later writes of the same
    turn join it, so a response's head and body (or a stream's chunks produced together)
    cost one system call. Closing flushes first; aborting drops what is buffered. Every
    other attribute is the wrapped transport's.
    """

    __slots__ = ("_buffer", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._buffer:
            if self._transport.is_closing():
                self._transport.write(data)  # what asyncio does with it (nothing, warned)
                return
            self._loop.call_soon(self._flush)
        self._buffer.append(data)

    def _flush(self) -> None:
        buffer = self._buffer
        if not buffer:
            return
        data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
        buffer.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._buffer.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self._buffer)) + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus a deadline for each request's headers."""

    def __init__(self, *args: Any, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self._header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def server_options(config: Config) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` that ``serve`` and the tests
    share, so that both run the gateway the same way."""
    return {"http": functools.partial(HeaderDeadlineProtocol,
                                      header_timeout_s=config.server.header_timeout_s),
            "access_log": config.server.access_log, "lifespan": "on",
            "timeout_graceful_shutdown": 10}
