"""Two `switchman serve` processes sharing one real redis-server: one budget holds across
both under concurrent load, an open breaker on one is open on the other, a conversation
stays on its model whichever replica serves the next turn, and a dead Redis fails no
request that no budget covers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from gateway_support import serve_process
from redis_support import redis_server

from switchman.gateway.execute.local import free_port


@contextlib.contextmanager
def _replica(config: dict[str, Any], workdir: Path, name: str) -> Iterator[str]:
    """``switchman serve`` with ``config`` in a process of its own; yields its base URL."""
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    with serve_process(path, workdir / f"{name}.log") as url:
        yield url


def _config(upstream_url: str, redis_url: str, workdir: Path, name: str,
            **extra: Any) -> dict[str, Any]:
    v1 = f"{upstream_url}/v1"
    return {"models": [
        {"name": "mid", "endpoint": v1, "upstream_model": "mid-up", "input_per_mtok": 1,
         "output_per_mtok": 2, "quality_prior": 0.6},
        {"name": "cheap", "endpoint": v1, "upstream_model": "cheap-up", "input_per_mtok": 0.1,
         "output_per_mtok": 0.2, "quality_prior": 0.3},
        {"name": "flaky", "endpoint": v1, "upstream_model": "fail-503", "quality_prior": 0.9,
         "retries": {"attempts": 1},
         "breaker": {"min_calls": 2, "failure_rate": 0.5, "cooldown_s": 60}}],
        "state": {"url": redis_url, "prefix": "replicas-test"},
        "log": {"path": str(workdir / f"{name}.sqlite")}, **extra}


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


BODY = {"model": "mid", "messages": [{"role": "user", "content": "x " * 200}], "max_tokens": 20}


def test_two_replicas_share_budget_breakers_and_stickiness(upstream, redis_url: str,
                                                          tmp_path: Path) -> None:
    budget = [{"name": "all", "usd": 20 * 1.4e-4, "period": "total"}]
    with _replica(_config(upstream.url, redis_url, tmp_path, "a", budgets=budget),
                  tmp_path, "a") as a, \
            _replica(_config(upstream.url, redis_url, tmp_path, "b", budgets=budget),
                     tmp_path, "b") as b:
        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as http:
                return await asyncio.gather(*(
                    http.post(f"{(a, b)[i % 2]}/v1/chat/completions", json=BODY)
                    for i in range(200)))

        answers = asyncio.run(burst())
        ok = [r for r in answers if r.status_code == 200]
        refused = [r for r in answers if r.status_code == 429]
        assert len(ok) + len(refused) == 200
        assert all(r.json()["error"]["code"] == "budget_exceeded" for r in refused)
        spent = sum(float(r.headers["x-switchman-cost-usd"]) for r in ok)
        assert spent <= 20 * 1.4e-4 + 1e-12 and len(ok) >= 10
        assert {a, b} == {r.url.scheme + "://" + r.url.netloc.decode() for r in ok}

        with httpx.Client(timeout=30) as http:
            flaky = {"model": "flaky", "messages": [{"role": "user", "content": "x"}]}
            for _ in range(2):
                assert http.post(f"{a}/v1/chat/completions", json=flaky).status_code == 502
            other = http.post(f"{b}/v1/chat/completions", json=flaky)
            assert other.status_code == 503 and other.json()["error"]["code"] == "circuit_open"
            status = http.get(f"{b}/v1/status").json()
            assert next(m for m in status["models"] if m["model"] == "flaky")["circuit"] == "open"


def test_stickiness_crosses_replicas(upstream, redis_url: str, tmp_path: Path) -> None:
    with _replica(_config(upstream.url, redis_url, tmp_path, "a"), tmp_path, "a") as a, \
            _replica(_config(upstream.url, redis_url, tmp_path, "b"), tmp_path, "b") as b, \
            httpx.Client(timeout=30) as http:
        turn = {"model": "switchman/auto", "messages": [{"role": "user", "content": "q"}],
                "switchman": {"conversation_id": "c1", "cost_weight": 0}}
        assert http.post(f"{a}/v1/chat/completions", json=turn).status_code == 200
        second = http.post(f"{b}/v1/chat/completions", json=turn)
        assert second.headers["x-switchman-reason"] == "sticky conversation"


def test_an_unreachable_redis_fails_no_request(upstream, tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with _replica(_config(upstream.url, dead, tmp_path, "c"), tmp_path, "c") as c, \
            httpx.Client(timeout=30) as http:
        turn = {"model": "switchman/auto", "messages": [{"role": "user", "content": "q"}]}
        assert all(http.post(f"{c}/v1/chat/completions", json=turn).status_code == 200
                   for _ in range(3))
        metrics = http.get(f"{c}/metrics").text
        fallbacks = [line for line in metrics.splitlines()
                     if line.startswith("switchman_state_fallbacks_total")]
        assert fallbacks and float(fallbacks[0].split()[-1]) > 0


def test_feedback_through_one_replica_changes_decisions_on_the_other(upstream, redis_url: str,
                                                                    tmp_path: Path) -> None:
    router = [{"name": "test/learn", "models": ["cheap", "mid"], "cost_weight": 0,
               "learn": True, "explore_share": 0}]
    state = {"url": redis_url, "prefix": "replicas-learn"}
    with _replica(_config(upstream.url, redis_url, tmp_path, "a", routers=router, state=state),
                  tmp_path, "a") as a, \
            _replica(_config(upstream.url, redis_url, tmp_path, "b", routers=router,
                             state=state), tmp_path, "b") as b, \
            httpx.Client(timeout=30) as http:
        body = {"model": "test/learn", "messages": [{"role": "user", "content": "q"}]}
        assert http.post(f"{b}/v1/chat/completions", json=body).headers[
            "x-switchman-model"] == "mid"
        for _ in range(80):  # rate mid's answers on replica a until a moves off it
            r = http.post(f"{a}/v1/chat/completions", json=body)
            if r.headers["x-switchman-model"] != "mid":
                break
            http.post(f"{a}/v1/feedback", json={"id": r.json()["id"], "score": 0})
        assert r.headers["x-switchman-model"] == "cheap"
        time.sleep(0.5)  # replicas look for newer learner state every 0.25 s
        assert http.post(f"{b}/v1/chat/completions", json=body).headers[
            "x-switchman-model"] == "cheap"


def test_feedback_reaches_any_replica_whichever_served_the_response(upstream, redis_url: str,
                                                                    tmp_path: Path) -> None:
    """Response ids are shared through Redis a log batch after the answer: replica b takes
    feedback on replica a's response, and still refuses an id nobody served."""
    state = {"url": redis_url, "prefix": "replicas-feedback"}
    with _replica(_config(upstream.url, redis_url, tmp_path, "a", state=state), tmp_path,
                  "a") as a, \
            _replica(_config(upstream.url, redis_url, tmp_path, "b", state=state), tmp_path,
                     "b") as b, \
            httpx.Client(timeout=30) as http:
        body = {"model": "switchman/auto", "messages": [{"role": "user", "content": "q"}]}
        served = http.post(f"{a}/v1/chat/completions", json=body).json()["id"]
        time.sleep(0.3)  # the writer indexes ids once per batch (~20 ms)
        assert http.post(f"{b}/v1/feedback", json={"id": served, "score": 1}).status_code == 200
        unknown = http.post(f"{b}/v1/feedback", json={"id": "chatcmpl-none", "score": 1})
        assert unknown.status_code == 404
