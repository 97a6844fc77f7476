"""switchman's HTTP/1.1 client against a raw server on loopback that sends what a test says.

The server reads each request (head and Content-Length body) and answers with the next
scripted bytes, so every framing, fault and timing the client must handle is sent for
real over a socket: nothing is mocked.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import uvloop

from switchman.gateway.execute.providers import http1

FAST = http1.Timeouts(connect_s=2.0, first_byte_s=2.0, total_s=5.0)


class Script(asyncio.Protocol):
    """Answers the n-th request on any connection with ``answers[n]``: bytes to write, a
    callable given the transport, or a list of (delay_s, bytes) to write over time."""

    def __init__(self, server: ScriptServer) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, rest = self.buffer.split(b"\r\n\r\n", 1)
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            if len(rest) < length:
                return
            self.server.requests.append(head + b"\r\n\r\n" + rest[:length])
            self.buffer = rest[length:]
            self.answer(self.server.answers.pop(0))

    def answer(self, what: object) -> None:
        assert self.transport is not None
        if callable(what):
            what(self.transport)
        elif isinstance(what, list):
            asyncio.get_running_loop().create_task(self.later(what))
        else:
            self.transport.write(what)

    async def later(self, pieces: list[tuple[float, bytes]]) -> None:
        for delay, data in pieces:
            await asyncio.sleep(delay)
            assert self.transport is not None
            self.transport.write(data)


class ScriptServer:
    def __init__(self) -> None:
        self.answers: list[object] = []
        self.requests: list[bytes] = []
        self.connections = 0
        self.url = ""


def run(case: Callable[[ScriptServer, http1.Pool], Awaitable[None]]) -> None:
    """``case`` on uvloop (the gateway's loop) with a fresh script server and pool."""

    async def main() -> None:
        state = ScriptServer()
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(lambda: Script(state), "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        state.url = f"http://127.0.0.1:{port}/v1/chat/completions"
        pool = http1.Pool()
        try:
            await case(state, pool)
        finally:
            pool.close()
            listener.close()

    uvloop.run(main())


def ok(body: bytes, *extra: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body) + b"".join(extra)
            + b"\r\n" + body)


def chunk(part: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(part), part)


def chunked(*parts: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(chunk(p) for p in parts) + b"0\r\n\r\n")


def test_sends_the_request_and_reads_a_sized_answer() -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        server.answers = [ok(b'{"a": 1}', b"Retry-After: 3\r\n")]
        status, headers, body = await pool.post(server.url, b'{"q": 1}',
                                                {"authorization": "Bearer k"}, FAST)
        assert (status, body, headers["retry-after"]) == (200, b'{"a": 1}', "3")
        request = server.requests[0]
        assert request.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"authorization: Bearer k\r\n" in request and b"Content-Length: 8\r\n" in request
        assert request.endswith(b'\r\n\r\n{"q": 1}')

    run(case)


def test_keeps_the_connection_for_the_next_call() -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        server.answers = [ok(b"1"), chunked(b"2"), ok(b"3")]
        bodies = [(await pool.post(server.url, b"", {}, FAST))[2] for _ in range(3)]
        assert bodies == [b"1", b"2", b"3"] and server.connections == 1

    run(case)


def test_concurrent_calls_take_a_connection_each() -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        server.answers = [[(0.05, ok(b"x"))] for _ in range(4)]
        results = await asyncio.gather(*(pool.post(server.url, b"", {}, FAST) for _ in range(4)))
        assert [r[2] for r in results] == [b"x"] * 4 and server.connections == 4

    run(case)


def test_chunked_gzip_and_close_framed_answers() -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        packed = gzip.compress(b"hello world")
        server.answers = [
            chunked(b"hel", b"lo"),
            ok(packed, b"Content-Encoding: gzip\r\n"),
            lambda t: (t.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"),
                       t.close()),
            b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"after continue"),
        ]
        bodies = [(await pool.post(server.url, b"", {}, FAST))[2] for _ in range(4)]
        assert bodies == [b"hello", b"hello world", b"until the end", b"after continue"]

    run(case)


def test_a_server_that_closes_an_idle_connection_costs_no_call() -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        server.answers = [lambda t: (t.write(ok(b"1")), t.close()), ok(b"2")]
        assert (await pool.post(server.url, b"", {}, FAST))[2] == b"1"
        await asyncio.sleep(0.05)  # the close arrives: the connection leaves the pool
        assert (await pool.post(server.url, b"", {}, FAST))[2] == b"2"
        assert server.connections == 2

    run(case)


@pytest.mark.parametrize("answer, error, answered", [
    (lambda t: t.close(), http1.Disconnected, False),
    (lambda t: (t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), t.close()),
     http1.Disconnected, True),
    (b"SPDY/9 nonsense\r\n\r\n", http1.ProtocolError, False),
    (ok(b"not gzip at all", b"Content-Encoding: gzip\r\n"), http1.ProtocolError, True),
], ids=["closed-before", "closed-mid-body", "not-http", "bad-gzip"])
def test_faults_are_named(answer, error, answered) -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        server.answers = [answer]
        with pytest.raises(error) as caught:
            await pool.post(server.url, b"", {}, FAST)
        assert caught.value.answered is answered

    run(case)


def test_the_wait_for_data_is_bounded_before_and_during_the_body() -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        quick = http1.Timeouts(connect_s=2.0, first_byte_s=0.2, total_s=5.0)
        server.answers = [[(1.0, ok(b"late"))],
                          [(0.0, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"),
                           (1.0, b"cd")]]
        with pytest.raises(http1.ReadTimeout) as before:
            await pool.post(server.url, b"", {}, quick)
        with pytest.raises(http1.ReadTimeout) as during:
            await pool.post(server.url, b"", {}, quick)
        assert (before.value.answered, during.value.answered) == (False, True)

    run(case)


def test_a_steady_trickle_still_ends_at_the_total() -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        limits = http1.Timeouts(connect_s=2.0, first_byte_s=0.3, total_s=0.6)
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        server.answers = [[(0.0, head)] + [(0.1, chunk(b"x"))] * 20]
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(http1.TotalTimeout):
            async with pool.stream(server.url, b"", {}, limits) as response:
                async for _ in response.lines():
                    pass
        assert 0.5 < loop.time() - started < 1.5

    run(case)


def test_streamed_lines_arrive_as_they_are_sent() -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        server.answers = [[(0.0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
                           (0.0, chunk(b"data: one\n")), (0.05, chunk(b"\ndata: tw")),
                           (0.05, chunk(b"o\n\nx")), (0.0, b"0\r\n\r\n")]]
        async with pool.stream(server.url, b"", {}, FAST) as response:
            lines = [line async for line in response.lines()]
        assert lines == [b"data: one\n", b"\n", b"data: two\n", b"\n", b"x"]
        assert server.connections == 1 and len(pool._idle[next(iter(pool._idle))]) == 1

    run(case)


def test_a_caller_that_leaves_early_closes_the_connection() -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        server.answers = [[(0.0, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst\n")],
                          ok(b"next")]
        async with pool.stream(server.url, b"", {}, FAST) as response:
            async for _ in response.lines():
                break
        assert (await pool.post(server.url, b"", {}, FAST))[2] == b"next"
        assert server.connections == 2  # the half-read answer's connection was not reused

    run(case)


def test_a_cancelled_call_never_returns_its_connection() -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        server.answers = [[(5.0, ok(b"too late"))], ok(b"fresh")]
        call = asyncio.ensure_future(pool.post(server.url, b"", {}, FAST))
        await asyncio.sleep(0.1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert (await pool.post(server.url, b"", {}, FAST))[2] == b"fresh"
        assert server.connections == 2

    run(case)


def test_a_slow_reader_pauses_the_socket() -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        big = b"y" * (3 << 20)
        server.answers = [ok(big)]
        async with pool.stream(server.url, b"", {}, FAST) as response:
            await asyncio.sleep(0.3)  # the server writes everything; the client stops reading
            connection = response._connection
            assert connection._paused and connection._buffered < len(big)
            got = b"".join([line async for line in response.lines()])
        assert got == big

    run(case)


def test_a_whole_answer_larger_than_the_high_water_mark_is_read() -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        big = b"z" * (5 << 20)
        server.answers = [ok(big)]
        assert (await pool.post(server.url, b"", {}, FAST))[2] == big

    run(case)


def test_unreachable_hosts_and_bad_urls_are_connect_errors() -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        with pytest.raises(http1.ConnectError):
            await pool.post("http://127.0.0.1:9/x", b"", {}, FAST)  # discard port: refused
        with pytest.raises(http1.ConnectError):
            await pool.post("ftp://example/x", b"", {}, FAST)

    run(case)


def test_a_header_with_a_line_break_is_refused() -> None:
    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        with pytest.raises(ValueError, match="line break"):
            await pool.post(server.url, b"", {"authorization": "Bearer k\r\nx-evil: 1"}, FAST)
        assert server.requests == []

    run(case)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_tls_verifies_the_upstream_certificate(tmp_path, monkeypatch) -> None:
    cert, key = _self_signed(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)

    async def case(server: ScriptServer, pool: http1.Pool) -> None:
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(lambda: Script(server), "127.0.0.1", 0,
                                            ssl=served)
        url = f"https://localhost:{listener.sockets[0].getsockname()[1]}/v1/x"
        try:
            with pytest.raises(http1.ConnectError):  # not signed by a trusted authority
                await pool.post(url, b"", {}, FAST)
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now it is trusted
            http1._tls_context.cache_clear()
            server.answers = [ok(b"over tls")]
            assert (await pool.post(url, b"{}", {}, FAST))[2] == b"over tls"
            assert server.requests[0].startswith(b"POST /v1/x HTTP/1.1\r\nHost: localhost:")
        finally:
            listener.close()
            http1._tls_context.cache_clear()

    http1._tls_context.cache_clear()
    run(case)
