"""Circuit breakers (unit, with a fake clock, and end to end), overload limits, status."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from fault_support import log_rows
from gateway_support import gateway_state

from switchman.config.reliability import BreakerConfig, RetryConfig
from switchman.gateway import commands
from switchman.gateway.execute.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from switchman.gateway.execute.guards import backoff_delay

P, B, S = "ok@primary", "ok@backup", "ok@solo"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_cools_down_and_probes_once() -> None:
    clock, changes = Clock(), []
    cfg = BreakerConfig(window_s=10, min_calls=4, failure_rate=0.5, cooldown_s=5)
    b = CircuitBreaker("m", cfg, lambda name, state: changes.append(state), clock)
    for ok in (True, False, True):
        assert b.admit().allowed
        b.record(ok)
    assert b.state == CLOSED  # 3 calls: below min_calls
    b.record(False)  # 2 of 4 failed
    assert b.state == OPEN and not b.admit().allowed
    assert b.admit().retry_after == pytest.approx(5)
    clock.now += 5
    assert b.state == HALF_OPEN
    first, second = b.admit(), b.admit()
    assert first.allowed and first.probe and not second.allowed  # a single probe
    b.record(False, probe=True)
    assert b.state == OPEN  # failed probe: another cool-down
    clock.now += 5
    probe = b.admit()
    b.release(probe.probe)  # the probe's caller went away: the next request probes
    probe = b.admit()
    assert probe.probe
    b.record(True, probe=True)
    assert b.state == CLOSED and b.counts() == (0, 0)
    assert changes == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_breaker_forgets_old_failures() -> None:
    clock = Clock()
    b = CircuitBreaker("m", BreakerConfig(window_s=10, min_calls=2, failure_rate=0.5), clock=clock)
    b.record(False)
    clock.now += 11
    b.record(False)
    assert b.state == CLOSED and b.counts() == (1, 1)


def test_backoff_is_exponential_with_full_jitter_and_honours_retry_after() -> None:
    policy = RetryConfig(attempts=5, backoff_base_s=0.1, backoff_max_s=0.3, retry_after_max_s=2)
    top = [backoff_delay(policy, a, None, rng=lambda lo, hi: hi) for a in range(4)]
    assert top == pytest.approx([0.1, 0.2, 0.3, 0.3])
    assert backoff_delay(policy, 0, None, rng=lambda lo, hi: lo) == 0
    assert backoff_delay(policy, 3, 1.5) == 1.5
    assert backoff_delay(policy, 0, 2.5) is None


def ask(http: httpx.Client, model: str, **extra: Any) -> httpx.Response:
    return http.post("/v1/chat/completions", json={
        "model": model, "messages": [{"role": "user", "content": "hi"}], **extra})


def test_breaker_end_to_end(fault_gateway, faults) -> None:
    breaker = {"enabled": True, "min_calls": 4, "failure_rate": 0.5, "cooldown_s": 1}
    with fault_gateway(breaker=breaker, retries={"attempts": 1}) as gw, \
            httpx.Client(base_url=gw.url, timeout=10) as http:
        faults.script(P, *["status-503"] * 4)
        for _ in range(4):
            assert ask(http, "primary").headers["x-switchman-model"] == "backup"
        assert faults.calls(P) == 4
        metrics = http.get("/metrics").text
        assert 'switchman_circuit_state{model="primary"} 2.0' in metrics
        assert 'switchman_circuit_opened_total{model="primary"} 1.0' in metrics
        status = http.get("/v1/status").json()
        primary = next(m for m in status["models"] if m["model"] == "primary")
        assert primary["circuit"] == "open" and primary["opened_total"] == 1

        r = ask(http, "primary")  # open: skipped without a call
        assert r.status_code == 200 and faults.calls(P) == 4
        assert r.headers["x-switchman-reason"] == "fallback after circuit_open from primary"
        assert r.headers["x-switchman-tried"] == "backup"
        row = log_rows(gateway_state(gw), r.headers["x-switchman-request-id"])[0]
        assert row["errors"][0].startswith("primary: circuit_open: circuit open for")

        r = ask(http, "primary", switchman={"fallback": False})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "circuit_open"
        assert int(r.headers["retry-after"]) >= 1

        time.sleep(1.1)  # cool-down over: one probe, which succeeds
        r = ask(http, "primary")
        assert r.headers["x-switchman-model"] == "primary" and faults.calls(P) == 5
        assert 'switchman_circuit_state{model="primary"} 0.0' in http.get("/metrics").text


def test_per_model_in_flight_limit_falls_back_then_429(fault_gateway, faults) -> None:
    with fault_gateway(max_in_flight=1, timeouts={"first_byte_s": 2}) as gw:
        faults.script(P, "slow-600")
        faults.script(B, "slow-600")

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
                first = asyncio.create_task(client.post("/v1/chat/completions", json={
                    "model": "primary", "messages": [{"role": "user", "content": "a"}]}))
                await asyncio.sleep(0.15)
                second = asyncio.create_task(client.post("/v1/chat/completions", json={
                    "model": "primary", "messages": [{"role": "user", "content": "b"}]}))
                await asyncio.sleep(0.15)
                third = await client.post("/v1/chat/completions", json={
                    "model": "primary", "messages": [{"role": "user", "content": "c"}]})
                return [await first, await second, third]

        first, second, third = asyncio.run(burst())
        assert first.headers["x-switchman-model"] == "primary"
        assert second.headers["x-switchman-model"] == "backup"
        assert second.headers["x-switchman-reason"] == "fallback after overloaded from primary"
        assert third.status_code == 429
        assert third.headers["retry-after"] == "1"
        assert third.json()["error"] == {
            "message": "every model of the plan is at its in-flight limit: primary: "
                       "overloaded: 1 calls in flight; backup: overloaded: 1 calls in flight",
            "type": "rate_limit_error", "param": None, "code": "overloaded"}
        rows = log_rows(gateway_state(gw), third.headers["x-switchman-request-id"])
        assert len(rows) == 1 and rows[0]["status"] == 429 and rows[0]["tried"] == []


def test_gateway_in_flight_limit_sheds_with_429(make_gateway, upstream) -> None:
    with make_gateway(server={"max_in_flight": 1, "overload_retry_after_s": 2}) as gw:
        body = {"model": "slow", "stream": True,
                "messages": [{"role": "user", "content": "hold"}]}
        with httpx.Client(base_url=gw.url, timeout=10) as http:
            with http.stream("POST", "/v1/chat/completions", json=body) as held:
                lines = held.iter_lines()  # kept: a collected iterator closes the stream
                next(lines)
                r = ask(http, "mid")
                assert r.status_code == 429
                assert r.headers["retry-after"] == "2"
                assert r.json()["error"]["code"] == "overloaded"
                assert r.json()["error"]["type"] == "rate_limit_error"
                assert gateway_state(gw).in_flight.active == 1
            for _ in range(50):  # the stream's slot is released when it ends
                if gateway_state(gw).in_flight.active == 0:
                    break
                time.sleep(0.05)
            assert ask(http, "mid").status_code == 200
            rows = log_rows(gateway_state(gw), r.headers["x-switchman-request-id"])
            assert len(rows) == 1 and rows[0]["error_kind"] == "overloaded"
            assert "switchman_overload_rejections_total 1.0" in http.get("/metrics").text


def test_status_command_prints_a_table(gateway, capsys) -> None:
    assert commands.main(["status", "--url", gateway.url]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["model", "circuit", "in_flight"]
    assert any(line.split()[:2] == ["mid", "closed"] for line in lines)
    assert commands.main(["status", "--url", "http://127.0.0.1:9", "--json"]) == 1
