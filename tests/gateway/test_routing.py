"""Routing decisions over HTTP: preferences (body and headers), eligibility, stickiness."""

from __future__ import annotations

import uuid

import httpx
import pytest


def ask(client: httpx.Client, messages: list | str, model: str = "switchman/auto",
        headers: dict | None = None, **extra) -> httpx.Response:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return client.post("/v1/chat/completions", headers=headers,
                       json={"model": model, "messages": messages, **extra})


def unique(text: str) -> str:
    """Distinct text per call, so conversation hashes never collide between tests."""
    return f"{text} {uuid.uuid4().hex}"


@pytest.mark.parametrize(("prefs", "expected"), [
    ({"cost_weight": 0}, "best"),
    ({"cost_weight": 1e6}, "cheap"),
    ({"max_cost_usd": 1e-4}, "cheap"),
    ({"allowed_models": ["best"]}, "best"),
    ({"excluded_models": ["mid"]}, "cheap"),
    ({"allowed_models": ["mid", "best"], "cost_weight": 1e6}, "mid"),
])
def test_body_preferences(client: httpx.Client, prefs: dict, expected: str) -> None:
    r = ask(client, unique("prefs"), switchman=prefs)
    assert r.status_code == 200, r.text
    assert r.headers["x-switchman-model"] == expected


@pytest.mark.parametrize(("headers", "expected"), [
    ({"x-switchman-cost-weight": "0"}, "best"),
    ({"x-switchman-max-cost-usd": "0.0001"}, "cheap"),
    ({"x-switchman-allowed-models": "best, cheap", "x-switchman-cost-weight": "1e6"}, "cheap"),
    ({"x-switchman-excluded-models": "mid"}, "cheap"),
])
def test_header_preferences(client: httpx.Client, headers: dict, expected: str) -> None:
    r = ask(client, unique("headers"), headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["x-switchman-model"] == expected


def test_body_preference_wins_over_header(client: httpx.Client) -> None:
    r = ask(client, unique("both"), headers={"x-switchman-cost-weight": "1e6"},
            switchman={"cost_weight": 0})
    assert r.headers["x-switchman-model"] == "best"
    assert r.headers["x-switchman-reason"] == "best utility at cost_weight=0"


@pytest.mark.parametrize(("prefs", "headers", "fragment"), [
    ({"cost_weight": -1}, None, "cost_weight must be >= 0"),
    ({"cost_weight": "high"}, None, "cost_weight must be a finite number"),
    ({"cost_weight": True}, None, "cost_weight must be a finite number"),
    ({"max_cost_usd": 0}, None, "max_cost_usd must be > 0"),
    ({"allowed_models": ["nope"]}, None, "unknown model(s) ['nope']"),
    ({"allowed_models": "mid"}, None, None),  # a comma list is accepted in the body too
    ({"excluded_models": [1]}, None, "must be a list of model names"),
    ({"colour": "blue"}, None, "unknown field(s) ['colour']"),
    ({"conversation_id": ""}, None, "conversation_id must be a string"),
    (None, {"x-switchman-cost-weight": "cheap please"}, "x-switchman-cost-weight must be a number"),
    (None, {"x-switchman-allowed-models": "mid,ghost"}, "unknown model(s) ['ghost']"),
])
def test_bad_preferences_are_400(client: httpx.Client, prefs, headers, fragment) -> None:
    extra = {} if prefs is None else {"switchman": prefs}
    r = ask(client, unique("bad prefs"), headers=headers, **extra)
    if fragment is None:
        assert r.status_code == 200
        return
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert fragment in err["message"]
    assert err["type"] == "invalid_request_error"


def test_context_window_excludes_small_models(client: httpx.Client) -> None:
    long_prompt = unique("word " * 5000)  # ~6000 tokens: more than cheap's 4096
    r = ask(client, long_prompt, switchman={"cost_weight": 1e6})
    assert r.headers["x-switchman-model"] == "mid"
    r = ask(client, long_prompt, model="cheap")
    assert r.status_code == 400
    assert "context window 4096" in r.json()["error"]["message"]


def test_max_tokens_counts_against_the_context_window(client: httpx.Client) -> None:
    r = ask(client, unique("short"), switchman={"cost_weight": 1e6}, max_tokens=5000)
    assert r.headers["x-switchman-model"] == "mid"


@pytest.mark.parametrize(("extra", "expected"), [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "mid"),
    ({"response_format": {"type": "json_object"}}, "mid"),
    ({"response_format": {"type": "text"}}, "cheap"),
])
def test_required_features_decide_eligibility(client: httpx.Client, extra, expected) -> None:
    r = ask(client, unique("feature"), switchman={"cost_weight": 1e6}, **extra)
    assert r.status_code == 200, r.text
    assert r.headers["x-switchman-model"] == expected


def test_images_need_vision(client: httpx.Client) -> None:
    content = [{"type": "text", "text": unique("what is this?")},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    r = ask(client, [{"role": "user", "content": content}], switchman={"cost_weight": 1e6})
    assert r.headers["x-switchman-model"] == "best"


def test_nothing_eligible_says_why(client: httpx.Client) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    r = ask(client, unique("impossible"), tools=tools, switchman={"allowed_models": ["cheap"]})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "no_eligible_model"
    assert "cheap: lacks tools" in err["message"]
    assert "mid: not in allowed_models" in err["message"]


def test_unknown_model_is_404_listing_choices(client: httpx.Client) -> None:
    r = ask(client, "hi", model="gpt-17")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"
    assert "switchman/auto" in r.json()["error"]["message"]


def test_conversation_sticks_to_its_first_model(client: httpx.Client) -> None:
    first = [{"role": "system", "content": "be brief"},
             {"role": "user", "content": unique("start a conversation")}]
    r1 = ask(client, first)
    assert r1.headers["x-switchman-model"] == "mid"
    reply = r1.json()["choices"][0]["message"]
    second = [*first, reply, {"role": "user", "content": "and then?"}]
    # A cost weight that alone would pick `cheap`: the conversation stays on `mid`.
    r2 = ask(client, second, switchman={"cost_weight": 1e6})
    assert r2.headers["x-switchman-model"] == "mid"
    assert r2.headers["x-switchman-reason"] == "sticky conversation"
    third = [*second, r2.json()["choices"][0]["message"], {"role": "user", "content": "more"}]
    r3 = ask(client, third, switchman={"cost_weight": 1e6})
    assert r3.headers["x-switchman-reason"] == "sticky conversation"
    # The same follow-up on a conversation never seen is routed afresh.
    fresh = [first[0], {"role": "user", "content": unique("other")}, reply,
             {"role": "user", "content": "and then?"}]
    r4 = ask(client, fresh, switchman={"cost_weight": 1e6})
    assert r4.headers["x-switchman-model"] == "cheap"


def test_streamed_conversation_sticks_too(client: httpx.Client) -> None:
    first = [{"role": "user", "content": unique("streamed start")}]
    r1 = ask(client, first, stream=True, switchman={"cost_weight": 0})
    assert r1.headers["x-switchman-model"] == "best"
    second = [*first, {"role": "assistant", "content": "answer from best-up"},
              {"role": "user", "content": "next"}]
    r2 = ask(client, second)
    assert r2.headers["x-switchman-model"] == "best"
    assert r2.headers["x-switchman-reason"] == "sticky conversation"


def test_conversation_id_sticks_and_yields_when_ineligible(client: httpx.Client) -> None:
    cid = unique("conv")
    r1 = ask(client, "one", switchman={"conversation_id": cid, "cost_weight": 1e6})
    assert r1.headers["x-switchman-model"] == "cheap"
    r2 = ask(client, "two", headers={"x-switchman-conversation-id": cid})
    assert r2.headers["x-switchman-model"] == "cheap"
    assert r2.headers["x-switchman-reason"] == "sticky conversation"
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    r3 = ask(client, "three", tools=tools, switchman={"conversation_id": cid})
    assert r3.headers["x-switchman-model"] == "mid"
    assert "sticky cheap ineligible" in r3.headers["x-switchman-reason"]
    r4 = ask(client, "four", switchman={"conversation_id": cid, "cost_weight": 1e6})
    assert r4.headers["x-switchman-model"] == "mid"  # the conversation moved on with mid


def test_sticky_model_failing_falls_back_and_moves(client: httpx.Client) -> None:
    cid = unique("conv-fail")
    r1 = ask(client, "one", model="test/fallback", switchman={"conversation_id": cid})
    assert r1.headers["x-switchman-model"] == "mid"
    r2 = ask(client, "two", model="test/fallback", switchman={"conversation_id": cid})
    assert r2.headers["x-switchman-model"] == "mid"
    assert r2.headers["x-switchman-reason"] == "sticky conversation"
