"""Bad input, auth, /v1/models, /healthz, /metrics, feedback, decision log and spend."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from gateway_support import UPSTREAM_KEY, gateway_state

MESSAGES = [{"role": "user", "content": "hi"}]


def assert_openai_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    return err


@pytest.mark.parametrize(("raw", "status", "fragment"), [
    (b"{not json", 400, "not valid JSON"),
    (b"", 400, "body is empty"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (b'"text"', 400, "must be a JSON object"),
    (b"\xff\xfe", 400, "not valid JSON"),
    (b"[" * 150_000 + b"]" * 150_000, 413, "exceeds the limit"),
    (b"[" * 50_000 + b"]" * 50_000, 400, "not valid JSON"),
])
def test_malformed_bodies(client: httpx.Client, raw: bytes, status: int, fragment: str) -> None:
    r = client.post("/v1/chat/completions", content=raw,
                    headers={"content-type": "application/json"})
    assert fragment in assert_openai_error(r, status)["message"]


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": MESSAGES}, "model"),
    ({"model": 5, "messages": MESSAGES}, "model"),
    ({"model": "mid"}, "messages"),
    ({"model": "mid", "messages": []}, "messages"),
    ({"model": "mid", "messages": "hi"}, "messages"),
    ({"model": "mid", "messages": [1]}, "messages[0]"),
    ({"model": "mid", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "mid", "messages": [{"role": "user"}]}, "messages[0].content"),
    ({"model": "mid", "messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
    ({"model": "mid", "messages": [{"role": "user", "content": [{"text": "x"}]}]},
     "messages[0].content[0]"),
    ({"model": "mid", "messages": MESSAGES, "max_tokens": "10"}, "max_tokens"),
    ({"model": "mid", "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
    ({"model": "mid", "messages": MESSAGES, "temperature": "hot"}, "temperature"),
    ({"model": "mid", "messages": MESSAGES, "temperature": 3}, "temperature"),
    ({"model": "mid", "messages": MESSAGES, "stream": "yes"}, "stream"),
    ({"model": "mid", "messages": MESSAGES, "tools": {"a": 1}}, "tools"),
    ({"model": "mid", "messages": MESSAGES, "tool_choice": 3}, "tool_choice"),
    ({"model": "mid", "messages": MESSAGES, "response_format": "json"}, "response_format"),
    ({"model": "mid", "messages": MESSAGES, "stream_options": []}, "stream_options"),
    ({"model": "mid", "messages": MESSAGES, "switchman": []}, "switchman"),
])
def test_invalid_requests_are_400_naming_the_field(client: httpx.Client, body: dict,
                                                   param: str) -> None:
    r = client.post("/v1/chat/completions", json=body)
    assert assert_openai_error(r, 400)["param"] == param


def test_oversize_body_is_413(client: httpx.Client) -> None:
    body = {"model": "mid", "messages": [{"role": "user", "content": "x" * 300_000}]}
    r = client.post("/v1/chat/completions", json=body)
    assert_openai_error(r, 413)


def test_oversize_chunked_body_is_413(client: httpx.Client) -> None:
    def chunks():
        for _ in range(50):
            yield b"x" * 10_000

    r = client.post("/v1/chat/completions", content=chunks())
    assert_openai_error(r, 413)


def test_wrong_method_and_path_are_openai_errors(client: httpx.Client) -> None:
    assert_openai_error(client.get("/v1/chat/completions"), 405)
    assert_openai_error(client.post("/v1/nothing", json={}), 404)


def test_models_lists_pool_and_routers(client: httpx.Client) -> None:
    data = client.get("/v1/models").json()["data"]
    ids = [m["id"] for m in data]
    assert {"switchman/auto", "test/fallback", "cheap", "mid", "best", "claude"} <= set(ids)
    keyless = next(m for m in data if m["id"] == "keyless")
    assert keyless["switchman"]["available"] is False
    one = client.get("/v1/models/switchman/auto").json()
    assert one["id"] == "switchman/auto" and one["switchman"]["type"] == "router"
    assert_openai_error(client.get("/v1/models/nope"), 404)


def test_healthz(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_metrics_cover_requests_tokens_dollars_decisions_errors(client: httpx.Client) -> None:
    client.post("/v1/chat/completions", json={"model": "switchman/auto", "messages": MESSAGES})
    client.post("/v1/chat/completions", json={"model": "mid", "messages": []})
    text = client.get("/metrics").text
    for needle in [
        'switchman_requests_total{model="mid",router="switchman/auto",status="200"}',
        'switchman_request_duration_seconds_bucket{le="0.05",model="mid",router="switchman/auto"}',
        'switchman_overhead_seconds_count{router="switchman/auto"}',
        'switchman_tokens_total{kind="prompt",model="mid",router="switchman/auto"}',
        'switchman_cost_usd_total{model="mid",router="switchman/auto"}',
        'switchman_routing_decisions_total{model="mid",reason="utility",router="switchman/auto"}',
        'switchman_errors_total{kind="invalid_request"}',
        'switchman_upstream_duration_seconds_count{model="mid"}',
    ]:
        assert needle in text, needle


def test_feedback_is_validated_and_stored(client: httpx.Client, gateway) -> None:
    r = client.post("/v1/chat/completions", json={"model": "mid", "messages": MESSAGES})
    rid = r.json()["id"]
    assert client.post("/v1/feedback", json={"id": rid, "score": 0.75}).status_code == 200
    assert client.post("/v1/feedback", json={"id": rid, "thumbs": "down"}).json()["score"] == 0
    assert_openai_error(client.post("/v1/feedback", json={"id": "chatcmpl-none", "score": 1}),
                        404)
    for bad in [{"id": rid, "score": 1.5}, {"id": rid}, {"id": rid, "score": 1, "thumbs": "up"},
                {"id": rid, "thumbs": "sideways"}, {"score": 1}, {"id": rid, "score": "1"}]:
        assert_openai_error(client.post("/v1/feedback", json=bad), 400)
    gw = gateway_state(gateway)
    gw.log.flush()
    with sqlite3.connect(gw.log.path) as conn:
        rows = conn.execute("SELECT score, label FROM feedback WHERE request_id = ? ORDER BY id",
                            (rid,)).fetchall()
    assert rows == [(0.0, "down")]  # a repeat replaces the earlier score


def test_decision_log_rows(client: httpx.Client, gateway) -> None:
    r = client.post("/v1/chat/completions", headers={"authorization": "Bearer client-key-1"},
                    json={"model": "test/fallback", "messages": MESSAGES})
    rid = r.json()["id"]
    gw = gateway_state(gateway)
    gw.log.flush()
    with sqlite3.connect(gw.log.path) as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM decisions WHERE request_id = ?",
                                (rid,)).fetchone())
    assert row["router"] == "test/fallback" and row["model"] == "mid" and row["status"] == 200
    assert json.loads(row["plan"]) == ["flaky", "dead", "limited", "leaky", "mid", "cheap"]
    assert json.loads(row["tried"]) == ["flaky", "dead", "limited", "leaky", "mid"]
    errors = json.loads(row["errors"])
    # flaky (503), dead (connection refused) and limited (429) are retried once each; the
    # 401 of leaky is not; each model's final failure is listed last.
    assert [e.split(":")[0] for e in errors] == ["flaky", "flaky", "dead", "dead", "limited",
                                                  "limited", "leaky"]
    assert sum("retried after" in e for e in errors) == 3
    assert row["reason"] == "fallback after 401 from leaky"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (100, 20)
    assert row["cost_usd"] == pytest.approx(1.4e-4) and row["cost_source"] == "usage"
    assert row["latency_ms"] > 0 and row["prompt"] is None
    assert row["api_key_id"] and row["api_key_id"] != "client-key-1"
    raw = Path(gw.log.path).read_bytes() + Path(f"{gw.log.path}-wal").read_bytes()
    assert b"client-key-1" not in raw and UPSTREAM_KEY.encode() not in raw


def test_auth_keys_and_prompt_logging(make_gateway) -> None:
    with make_gateway(auth={"api_keys": ["sk-gw-one", "sk-gw-two"]},
                      log={"store_prompts": True}) as gw, \
            httpx.Client(base_url=gw.url) as http:
        body = {"model": "mid", "messages": [{"role": "user", "content": "secret prompt"}]}
        assert_openai_error(http.post("/v1/chat/completions", json=body), 401)
        err = assert_openai_error(http.post("/v1/chat/completions", json=body,
                                            headers={"authorization": "Bearer nope"}), 401)
        assert err["type"] == "authentication_error"
        assert_openai_error(http.get("/v1/models"), 401)
        ok = http.post("/v1/chat/completions", json=body,
                       headers={"authorization": "Bearer sk-gw-two"})
        assert ok.status_code == 200
        state = gateway_state(gw)
        state.log.flush()
        with sqlite3.connect(state.log.path) as conn:
            prompt = conn.execute("SELECT prompt FROM decisions WHERE request_id = ?",
                                  (ok.json()["id"],)).fetchone()[0]
        assert prompt == "secret prompt"


def test_spend_command_prints_per_model_router_key(client: httpx.Client, gateway,
                                                   tmp_path: Path) -> None:
    for key in ("key-a", "key-b"):
        client.post("/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                    json={"model": "switchman/auto", "messages": MESSAGES})
    gw = gateway_state(gateway)
    gw.log.flush()
    config = tmp_path / "spend.yaml"
    config.write_text(yaml.safe_dump({"models": [{"name": "m", "endpoint": "http://x/v1"}],
                                      "log": {"path": str(gw.log.path)}}))
    run = subprocess.run([sys.executable, "-m", "switchman.gateway", "spend", "--config",
                          str(config), "--json"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    mid = next(r for r in report["model"] if r["key"] == "mid")
    assert mid["requests"] >= 2 and mid["cost_usd"] > 0
    assert any(r["key"] == "switchman/auto" for r in report["router"])
    assert len(report["api_key"]) >= 2
    text = subprocess.run([sys.executable, "-m", "switchman.gateway", "spend", "--config",
                           str(config)], capture_output=True, text=True, timeout=60).stdout
    assert "switchman/auto" in text and "total" in text
