"""A response leaves the gateway in one write (``CoalescingTransport``), and whole.

uvicorn writes an ASGI response's head and body with two ``send`` calls; the gateway's
transport joins what one turn of the event loop writes. Tested on a real loopback
connection (how many writes reach the socket's transport) and through a real gateway
(answers on a kept-alive connection, and an answer written just before the close).
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from switchman.gateway.api.server import CoalescingTransport

BODY = json.dumps({"model": "mid", "messages": [{"role": "user", "content": "hi"}]}).encode()


def _request(close: bool) -> bytes:
    return (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json"
            + (b"\r\nconnection: close" if close else b"")
            + b"\r\ncontent-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").lower().split("\r\n")
    length = next(int(x.split(":", 1)[1]) for x in lines if x.startswith("content-length:"))
    return len(body) == length


def test_each_answer_on_a_kept_alive_connection_arrives_in_one_piece(make_gateway) -> None:
    with make_gateway() as gw, socket.create_connection(("127.0.0.1", gw.port),
                                                        timeout=10) as sock:
        for _ in range(5):
            sock.sendall(_request(close=False))
            answer = sock.recv(1 << 20)
            assert answer.startswith(b"HTTP/1.1 200")
            assert _complete(answer), answer
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["model"] == "mid"


def test_an_answer_before_the_connection_closes_is_flushed_first(make_gateway) -> None:
    with make_gateway() as gw, socket.create_connection(("127.0.0.1", gw.port),
                                                        timeout=10) as sock:
        sock.sendall(_request(close=True))
        answer = b""
        while chunk := sock.recv(1 << 20):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
        assert _complete(answer)


class _Counted:
    """A real transport, with the writes that reach it recorded."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _Sink(asyncio.Protocol):
    def __init__(self, received: bytearray, closed: asyncio.Future) -> None:
        self.received, self.closed = received, closed

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(None)


async def _over_loopback(scenario: Any) -> tuple[list[bytes], bytes]:
    """Run ``scenario(transport)`` on a coalescing transport over a real loopback socket;
    what reached the socket, write by write, and what the other end received."""
    loop = asyncio.get_running_loop()
    received, closed = bytearray(), loop.create_future()
    server = await loop.create_server(lambda: _Sink(received, closed), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    counted = _Counted(transport)
    await scenario(CoalescingTransport(counted, loop))  # type: ignore[arg-type]
    transport.close()
    await asyncio.wait_for(closed, 5)
    server.close()
    return counted.writes, bytes(received)


def test_writes_of_one_turn_reach_the_socket_as_one() -> None:
    async def scenario(co: CoalescingTransport) -> None:
        co.write(b"head;")
        co.write(b"body")
        assert co.get_write_buffer_size() == 9
        await asyncio.sleep(0.01)
        co.write(b";next turn")
        await asyncio.sleep(0.01)

    writes, received = asyncio.run(_over_loopback(scenario))
    assert writes == [b"head;body", b";next turn"]
    assert received == b"head;body;next turn"


def test_close_flushes_first_and_abort_drops() -> None:
    async def closing(co: CoalescingTransport) -> None:
        co.write(b"last words")
        co.close()

    async def aborting(co: CoalescingTransport) -> None:
        co.write(b"never sent")
        co.abort()

    assert asyncio.run(_over_loopback(closing)) == ([b"last words"], b"last words")
    assert asyncio.run(_over_loopback(aborting)) == ([], b"")
