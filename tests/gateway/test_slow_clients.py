"""Slow and vanishing clients: they hold no gateway slot, and get timed out or logged.

Raw sockets on loopback play the slow clients (a byte at a time, headers never finished);
the gateway is the real one, served by uvicorn with the options ``serve`` uses.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import time
from collections.abc import Iterator

import httpx
import pytest
from fault_support import log_rows
from gateway_support import gateway_state

BODY = json.dumps({"model": "mid", "messages": [{"role": "user", "content": "hi"}]}).encode()


@contextlib.contextmanager
def _sockets(port: int, n: int, first: bytes) -> Iterator[list[socket.socket]]:
    """``n`` connections that have sent ``first`` and nothing more (yet)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(first)
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def _headers(length: int) -> bytes:
    return (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json"
            b"\r\ncontent-length: " + str(length).encode() + b"\r\n\r\n")


def test_trickling_bodies_hold_no_slot_and_time_out(make_gateway) -> None:
    with make_gateway(server={"max_in_flight": 2, "body_timeout_s": 1.0}) as gw, \
            _sockets(gw.port, 20, _headers(len(BODY)) + BODY[:1]) as slow, \
            httpx.Client(base_url=gw.url, timeout=10) as http:
        for _ in range(3):
            assert http.post("/v1/chat/completions", content=BODY,
                             headers={"content-type": "application/json"}).status_code == 200
        time.sleep(1.5)
        answer = slow[0].recv(65536)
        assert answer.startswith(b"HTTP/1.1 408")
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"
        assert gateway_state(gw).in_flight.active == 0


def test_unfinished_headers_are_answered_408_and_closed(make_gateway) -> None:
    with make_gateway(server={"header_timeout_s": 0.5}) as gw, \
            _sockets(gw.port, 3, b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n") as socks:
        time.sleep(1.0)
        for s in socks:
            answer = s.recv(65536)
            assert answer.startswith(b"HTTP/1.1 408")
            assert s.recv(65536) == b""  # closed: the file descriptor is free again


def test_a_complete_request_is_not_cut_by_the_header_deadline(make_gateway) -> None:
    with make_gateway(server={"header_timeout_s": 0.5}) as gw, \
            httpx.Client(base_url=gw.url, timeout=10) as http:
        for _ in range(3):  # keep-alive: later requests on the same connection
            assert http.get("/healthz").status_code == 200
            time.sleep(0.7)


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_gone_before_the_answer_frees_its_slot_and_is_499(
        fault_gateway, faults, stream: bool) -> None:
    faults.script("ok@solo", "hang")
    with fault_gateway(timeouts={"first_byte_s": 30, "total_s": 60}) as gw:
        state = gateway_state(gw)
        body = {"model": "solo", "messages": [{"role": "user", "content": "hi"}],
                "stream": stream}
        with pytest.raises(httpx.TimeoutException), \
                httpx.Client(base_url=gw.url, timeout=0.5) as http:
            http.post("/v1/chat/completions", json=body)
        deadline = time.monotonic() + 2
        while state.in_flight.active and time.monotonic() < deadline:
            time.sleep(0.02)
        assert state.in_flight.active == 0
        assert state.guards["solo"].in_flight.active == 0
        state.log.flush()
        with sqlite3.connect(state.log.path) as conn:
            ids = [r[0] for r in conn.execute("SELECT request_id FROM decisions")]
        rows = [row for rid in ids for row in log_rows(state, rid)]
        assert [(r["status"], r["error_kind"]) for r in rows] == [(499, "client_disconnected")]
