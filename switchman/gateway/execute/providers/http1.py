"""HTTP/1.1 POSTs to upstreams on asyncio's protocols and httptools' parser, over one pool.

Why not aiohttp's client, which this replaced: measured in one process against an instant
upstream at 32 concurrent calls, an aiohttp session cost ~80 us of CPU per POST and this
client ~5 us, and the difference was the largest single part of what a pinned request
costs the gateway beyond a bare pass-through (issue 13). httptools is the C parser uvicorn
already runs on; what is left in Python is a few callbacks per response.

It does what the gateway's upstream calls need and nothing more: a POST with a body;
answers framed by Content-Length, chunked, or the connection's close; keep-alive reuse
(idle connections a server closes leave the pool as the close arrives; a POST is never
sent twice by the client, since the upstream may have read it: retrying is the
executor's decision, counted and logged); TLS with the system's certificates; per-call timeouts
for the connection, for every wait for data and for the whole call; gzip or deflate
answers decoded; and streamed reads that stop reading the socket while the caller is
behind (back-pressure). No proxies, redirects or cookies: upstream APIs use none.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from urllib.parse import urlsplit

import httptools

#: An idle connection older than this is closed rather than reused: servers drop idle
#: keep-alive connections after 5-120 s, and a fresh connection beats one whose close
#: crosses the request on the wire.
IDLE_S = 15.0
#: A streamed answer buffered beyond this stops the socket being read until the caller
#: has taken it (and resumes below a quarter of it).
_HIGH_WATER = 1 << 20


class HTTPError(Exception):
    """A call that got no complete answer; ``answered`` once the status line arrived."""

    def __init__(self, message: str, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


class ConnectError(HTTPError):
    """No connection: refused, unreachable, the name unknown or the TLS handshake failed."""


class ConnectTimeout(HTTPError):
    """No connection within the connect timeout."""


class ReadTimeout(HTTPError):
    """No data within the first-byte timeout, before the headers or between two reads."""


class TotalTimeout(HTTPError):
    """The whole call outlasted its total timeout."""


class Disconnected(HTTPError):
    """The upstream closed the connection before its answer was complete."""


class ProtocolError(HTTPError):
    """The upstream's bytes are not an HTTP/1.1 response."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """One call's limits: the connection's set-up, every wait for data, the whole call."""

    connect_s: float
    first_byte_s: float
    total_s: float


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a URL's requests go, and the first bytes of every request to it."""

    key: tuple[str, int, bool]  # host, port, TLS: one pool of idle connections each
    head: bytes  # "POST /path HTTP/1.1\r\nHost: ...\r\n"


@lru_cache(maxsize=1024)  # one per model endpoint
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectError(f"not an http(s) URL: {url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if parts.port is None else f"{shown}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\n".encode("ascii")
    return _Target((host, port, tls), head)


@lru_cache(maxsize=1024)  # one per model's fixed headers
def _header_lines(items: tuple[tuple[str, str], ...]) -> bytes:
    """A request's own headers as bytes; a value with a line break would smuggle a header
    (they come from configuration, but a key pasted with its newline is easy to make)."""
    lines = []
    for name, value in items:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


@cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


class Response:
    """An answer's status and headers, then its body (all at once, or as lines)."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.status = connection.status
        self.headers = connection.headers  # lower-case names, latin-1 values

    async def read(self) -> bytes:
        """The whole body. Taken as it arrives, so that a body larger than the high-water
        mark does not pause the socket with nobody left to resume it."""
        connection = self._connection
        parts = [connection.take_all()]
        while not connection.complete:
            await connection.more()
            parts.append(connection.take_all())
        return b"".join(parts)

    async def lines(self) -> AsyncIterator[bytes]:
        """The body's lines, each with its ``\\n`` (the last one may lack it)."""
        connection = self._connection
        partial: list[bytes] = []  # a line still arriving, in pieces (joined once, at its end)
        while True:
            piece = connection.take_all()
            if b"\n" in piece:
                *whole, rest = b"".join([*partial, piece]).split(b"\n")
                partial = [rest] if rest else []
                for line in whole:
                    yield line + b"\n"
            elif piece:
                partial.append(piece)
            elif connection.complete:
                if partial:
                    yield b"".join(partial)
                return
            else:
                await connection.more()


class _Connection(asyncio.Protocol):
    """One keep-alive connection, carrying one exchange at a time."""

    def __init__(self, pool: Pool, key: tuple[str, int, bool]) -> None:
        self._pool = pool
        self.key = key
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.complete = False
        self._keep_alive = False
        self._headers_done = False
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._decoder: zlib._Decompress | None = None
        self._error: HTTPError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_data = 0.0
        self._deadline = 0.0
        self._read_s = 0.0

    # ------------------------------------------------------------------ the exchange

    async def exchange(self, request: bytes, timeouts: Timeouts) -> Response:
        """Send ``request``; return once the answer's headers are in."""
        assert self._transport is not None
        now = self._loop.time()
        self._deadline = now + timeouts.total_s
        self._read_s = timeouts.first_byte_s
        self._last_data = now
        self._timer = self._loop.call_at(min(self._deadline, now + self._read_s), self._check)
        self._transport.write(request)
        while not self._headers_done:
            await self.more()
        return Response(self)

    async def more(self) -> None:
        """Wait for the parser to make progress (data, the end, or an error)."""
        if self._error is not None:
            raise self._error
        if self._paused and self._buffered < _HIGH_WATER // 4:
            self._paused = False
            assert self._transport is not None
            self._transport.resume_reading()
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def take_all(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return data

    def finish(self) -> None:
        """The caller is done with the answer: back to the pool if it can be reused."""
        if self._timer is not None:
            self._timer.cancel()
        if self.complete and self._keep_alive and not self.closed and self._error is None:
            self._reset()
            self._pool.release(self)
        else:
            self.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _fail(self, error: HTTPError) -> None:
        if self._error is None and not self.complete:
            self._error = error
        self._wake()
        self.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _check(self) -> None:
        """The call's one timer: the total deadline, and the wait for data (not counted
        while reading is paused for a slow caller)."""
        self._timer = None
        if self.complete or self.closed:
            return
        now = self._loop.time()
        if now >= self._deadline:
            self._fail(TotalTimeout("total", self._headers_done))
            return
        read_deadline = self._last_data + self._read_s
        if self._paused:
            read_deadline = now + self._read_s
        elif now >= read_deadline:
            self._fail(ReadTimeout("read", self._headers_done))
            return
        self._timer = self._loop.call_at(min(self._deadline, read_deadline), self._check)

    # ------------------------------------------------------------------ asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._last_data = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"malformed response: {exc}", self._headers_done))

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._headers_done and not self.complete and self._until_close():
            self.complete = True  # an answer framed by the connection's end
            self._wake()
        elif not self.complete:
            self._fail(Disconnected("closed", self._headers_done))
        self._pool.forget(self)

    # ------------------------------------------------------------------ httptools' side

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue): the real one follows
            self.headers = {}
            return
        self.status = status
        self._headers_done = True
        encoding = self.headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error:
                self._fail(ProtocolError("malformed compressed body", True))
                return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self._headers_done:
            return  # the end of an interim answer
        self._keep_alive = self._parser.should_keep_alive()
        self.complete = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake()

    def _until_close(self) -> bool:
        """Whether the answer's body runs until the connection closes (no length given)."""
        return ("content-length" not in self.headers
                and "chunked" not in self.headers.get("transfer-encoding", "").lower())


class Pool:
    """Idle keep-alive connections by (host, port, TLS), and the calls that use them."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self._open: set[_Connection] = set()

    async def post(self, url: str, body: bytes, headers: Mapping[str, str],
                   timeouts: Timeouts) -> tuple[int, dict[str, str], bytes]:
        """POST and read the whole answer: (status, headers, body).

        What :meth:`stream` does, without its context manager: ``asynccontextmanager``'s
        generator and ``__aenter__``/``__aexit__`` were a few percent of a pinned request.
        """
        response = await self._request(url, body, headers, timeouts)
        try:
            return response.status, response.headers, await response.read()
        finally:
            response._connection.finish()

    async def _request(self, url: str, body: bytes, headers: Mapping[str, str],
                   timeouts: Timeouts) -> Response:
        """POST and return once the headers are in (``stream`` finishes the connection)."""
        target = _target(url)
        request = (target.head + _header_lines(tuple(headers.items()))
                   + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        connection = await self._connection(target.key, timeouts)
        try:
            return await connection.exchange(request, timeouts)
        except BaseException:  # failed, or cancelled while the answer is still coming
            connection.close()
            raise

    @contextlib.asynccontextmanager
    async def stream(self, url: str, body: bytes, headers: Mapping[str, str],
                     timeouts: Timeouts) -> AsyncIterator[Response]:
        """The response once its headers are in, as a context: its connection finished
        (pooled again, or closed) however the caller leaves."""
        response = await self._request(url, body, headers, timeouts)
        try:
            yield response
        finally:
            response._connection.finish()

    async def _connection(self, key: tuple[str, int, bool], timeouts: Timeouts) -> _Connection:
        """An idle connection to ``key``, else a new one."""
        idle = self._idle.get(key)
        now = asyncio.get_running_loop().time()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_S:
                return connection
            connection.close()
        host, port, tls = key
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(loop.create_connection(
                lambda: _Connection(self, key), host, port,
                ssl=_tls_context() if tls else None,
                server_hostname=host if tls else None), timeouts.connect_s)
        except TimeoutError:
            raise ConnectTimeout("connect timeout") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"cannot connect: {exc}") from None
        self._open.add(connection)
        return connection

    def release(self, connection: _Connection) -> None:
        connection.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(connection.key, []).append(connection)

    def forget(self, connection: _Connection) -> None:
        """A connection closed (by either side): it is no longer idle nor open."""
        self._open.discard(connection)
        idle = self._idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)

    def close(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._idle.clear()
        self._open.clear()


__all__ = ["ConnectError", "ConnectTimeout", "Disconnected", "HTTPError", "Pool",
           "ProtocolError", "ReadTimeout", "Response", "Timeouts", "TotalTimeout"]
