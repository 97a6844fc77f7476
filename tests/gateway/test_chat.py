"""Chat completions through the gateway against the test upstream: answers, pass-through,
streaming (official client), decision headers, fallback and upstream failures."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import openai
import pytest
from gateway_support import ANTHROPIC_KEY, UPSTREAM_KEY, gateway_state


def chat(client: httpx.Client, model: str = "switchman/auto", content: str = "hello",
         **extra) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    return client.post("/v1/chat/completions", json=body)


def test_pinned_model_answers_with_decision_headers(client: httpx.Client) -> None:
    r = chat(client, "mid", "pinned question")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "mid"
    assert body["choices"][0]["message"]["content"] == "answer from mid-up"
    assert body["id"] == r.headers["x-switchman-request-id"]
    assert body["id"].startswith("chatcmpl-")
    assert r.headers["x-switchman-model"] == "mid"
    assert r.headers["x-switchman-router"] == "none"
    assert r.headers["x-switchman-reason"] == "pinned by request"
    # 100 prompt x $1/M + 20 completion x $2/M, from the upstream's usage
    assert float(r.headers["x-switchman-cost-usd"]) == pytest.approx(1.4e-4)


def test_router_name_routes_by_utility(client: httpx.Client) -> None:
    r = chat(client, "switchman/auto", "which model?")
    assert r.status_code == 200
    assert r.headers["x-switchman-model"] == "mid"  # best utility at cost_weight=500
    assert r.headers["x-switchman-router"] == "switchman/auto"
    assert r.headers["x-switchman-reason"] == "best utility at cost_weight=500"
    assert r.json()["model"] == "mid"


def test_fields_pass_through_unchanged(client: httpx.Client) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}}}}]
    sent = {"tools": tools, "tool_choice": "auto", "temperature": 0.3, "max_tokens": 50,
            "response_format": {"type": "json_object"}, "seed": 7,
            "vendor_extension": {"nested": [1, 2, 3]}, "top_p": 0.9,
            "switchman": {"cost_weight": 10}}
    r = chat(client, "mid", "pass these through", **sent)
    assert r.status_code == 200, r.text
    echo = r.json()["echo"]
    assert echo["model"] == "mid-up"
    assert "switchman" not in echo
    for key, value in sent.items():
        if key != "switchman":
            assert echo[key] == value, key


def test_tool_calls_come_back(client: httpx.Client) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    r = chat(client, "mid", "call a tool", tools=tools, tool_choice="required")
    message = r.json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "lookup"
    assert r.json()["choices"][0]["finish_reason"] == "tool_calls"


def test_provider_key_sent_upstream_but_never_echoed(client: httpx.Client,
                                                     upstream) -> None:
    r = chat(client, "best", "keyed call")
    assert r.status_code == 200
    seen = upstream.app.state.received[-1]["headers"]
    assert seen["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert UPSTREAM_KEY not in r.text and UPSTREAM_KEY not in str(r.headers)


def test_openai_client_non_streaming_and_streaming(gateway) -> None:
    api = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="anything")
    done = api.chat.completions.create(
        model="switchman/auto", messages=[{"role": "user", "content": "client call"}])
    assert done.choices[0].message.content == "answer from mid-up"
    assert done.model == "mid"
    stream = api.chat.completions.create(
        model="switchman/auto", messages=[{"role": "user", "content": "client stream"}],
        stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "answer from mid-up"
    assert {c.model for c in chunks} == {"mid"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].usage.prompt_tokens == 100
    assert chunks[-1].model_extra["switchman"]["cost_usd"] == pytest.approx(1.4e-4)


def test_stream_without_include_usage_hides_usage_chunk(client: httpx.Client,
                                                        upstream) -> None:
    r = chat(client, "mid", "stream me", stream=True)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-switchman-cost-source"] == "estimate"
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    for event in events[:-1]:
        data = json.loads(event)
        assert data["choices"], "usage-only chunk leaked to a client that did not ask"
        assert "usage" not in data
    sent = upstream.app.state.received[-1]["body"]
    assert sent["stream_options"] == {"include_usage": True}  # asked upstream for accounting


def test_stream_usage_estimated_when_upstream_sends_none(client: httpx.Client) -> None:
    r = chat(client, "no-usage", "count me", stream=True,
             stream_options={"include_usage": True})
    events = [json.loads(line[6:]) for line in r.text.splitlines()
              if line.startswith("data: {")]
    last = events[-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] > 0
    assert last["switchman"]["usage_estimated"] is True


def test_fallback_walks_the_plan(client: httpx.Client, gateway) -> None:
    r = chat(client, "test/fallback", "fallback please")
    assert r.status_code == 200, r.text
    assert r.headers["x-switchman-model"] == "mid"
    assert r.headers["x-switchman-tried"] == "flaky,dead,limited,leaky,mid"
    assert r.headers["x-switchman-reason"] == "fallback after 401 from leaky"
    gw = gateway_state(gateway)
    gw.log.flush()
    metrics = client.get("/metrics").text
    assert 'switchman_fallbacks_total{error="503",from_model="flaky",to_model="dead"}' in metrics
    assert 'from_model="dead",to_model="limited"' in metrics


def test_streaming_falls_back_before_first_chunk(client: httpx.Client) -> None:
    r = chat(client, "test/fallback", "stream fallback", stream=True)
    assert r.status_code == 200
    assert r.headers["x-switchman-model"] == "mid"
    assert r.headers["x-switchman-reason"].startswith("fallback after")
    assert "answer" in r.text


def test_all_models_failing_is_a_clear_502(client: httpx.Client) -> None:
    r = chat(client, "test/all-fail", "doomed")
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "upstream_failed"
    assert "flaky: 503" in err["message"] and "dead: connect" in err["message"]


def test_upstream_key_in_error_message_is_redacted(client: httpx.Client) -> None:
    r = chat(client, "leaky", "leak test")
    assert r.status_code == 502
    assert UPSTREAM_KEY not in r.text
    assert "[redacted]" in r.text
    assert ANTHROPIC_KEY not in r.text


def test_upstream_client_error_is_relayed_not_retried(client: httpx.Client) -> None:
    r = chat(client, "rejecting", "bad for upstream")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "upstream_rejected"
    assert "rejecting" in r.json()["error"]["message"]


def test_mid_stream_failure_ends_with_error_event(client: httpx.Client) -> None:
    r = chat(client, "broken-stream", "break", stream=True)
    assert r.status_code == 200
    assert "partial" in r.text
    assert "[DONE]" not in r.text
    last = r.text.strip().split("\n\n")[-1]
    assert '"code": "upstream_failed_mid_stream"' in last


def test_unavailable_model_is_explained(client: httpx.Client) -> None:
    r = chat(client, "keyless", "no key")
    assert r.status_code == 400
    assert "SWITCHMAN_TEST_UNSET_KEY" in r.json()["error"]["message"]


def test_client_disconnect_mid_stream_is_logged(gateway) -> None:
    body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "slow"}]}
    with httpx.Client(base_url=gateway.url) as http, \
            http.stream("POST", "/v1/chat/completions", json=body) as r:
        rid = r.headers["x-switchman-request-id"]
        next(r.iter_lines())
    gw = gateway_state(gateway)
    for _ in range(50):
        gw.log.flush()
        with sqlite3.connect(gw.log.path) as conn:
            row = conn.execute("SELECT status, error_kind FROM decisions WHERE request_id = ?",
                               (rid,)).fetchone()
        if row:
            break
        time.sleep(0.1)
    assert row == (499, "client_disconnected")
