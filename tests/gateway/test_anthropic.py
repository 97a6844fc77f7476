"""Anthropic Messages translation, against shapes recorded from Anthropic's public docs, and
end to end through the gateway (the test upstream replays those shapes over HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from gateway_support import ANTHROPIC_KEY

from switchman.gateway.execute.providers.anthropic_format import (
    StreamTranslator,
    TranslationError,
    from_anthropic,
    to_anthropic,
)

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def events(name: str) -> list[dict]:
    return [json.loads(line[5:]) for line in (FIXTURES / name).read_text().splitlines()
            if line.startswith("data:")]


def test_request_translation_matches_recorded_shape() -> None:
    out = to_anthropic(load("openai_request_tools.json"), "claude-sonnet-4-5")
    assert out == load("anthropic_request_tools.json")


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"}),
])
def test_tool_choice_variants(choice: str, expected: dict) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "tool_choice": choice}
    assert to_anthropic(body, "m")["tool_choice"] == expected


def test_request_defaults_and_merging() -> None:
    body = {"messages": [{"role": "developer", "content": "rules"},
                         {"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            "max_completion_tokens": 77, "stop": ["x", "y"]}
    out = to_anthropic(body, "m")
    assert out["system"] == "rules"
    assert out["max_tokens"] == 77 and out["stop_sequences"] == ["x", "y"]
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                            {"type": "text", "text": "b"}]}]
    assert "max_tokens" in to_anthropic({"messages": body["messages"]}, "m")


def test_bad_tool_arguments_are_a_translation_error() -> None:
    body = {"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}
    with pytest.raises(TranslationError):
        to_anthropic(body, "m")


def test_text_response_translation() -> None:
    out = from_anthropic(load("response_text.json"), "claude")
    assert out["object"] == "chat.completion" and out["model"] == "claude"
    assert out["choices"][0]["message"] == {"role": "assistant",
                                            "content": "Hi! My name is Claude."}
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 2095, "completion_tokens": 503,
                            "total_tokens": 2598}


def test_tool_use_response_translation() -> None:
    out = from_anthropic(load("response_tool_use.json"), "claude")
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["id"] == "toolu_01A09q90qw90lq917835lq9"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"location": "San Francisco, CA",
                                                         "unit": "celsius"}
    assert choice["message"]["content"].startswith("I'll check")
    assert out["usage"]["prompt_tokens"] == 482  # cache reads count as input


def test_text_stream_translation() -> None:
    translator = StreamTranslator("claude")
    chunks = [c for e in events("stream_text.sse") for c in translator.feed(e)]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello!"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 25, "completion_tokens": 15,
                                   "total_tokens": 40}
    assert {c["id"] for c in chunks} == {"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"}


def test_tool_use_stream_translation() -> None:
    translator = StreamTranslator("claude")
    chunks = [c for e in events("stream_tool_use.sse") for c in translator.feed(e)]
    calls = [tc for c in chunks if c["choices"]
             for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["id"] == "toolu_01T1x1fJ34qAmk2tNTrN7Up6" and calls[0]["index"] == 0
    arguments = "".join(tc["function"].get("arguments") or "" for tc in calls)
    assert json.loads(arguments) == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"


def test_gateway_calls_anthropic_with_its_headers(client: httpx.Client, upstream) -> None:
    r = client.post("/v1/chat/completions", json={
        "model": "claude", "messages": [{"role": "system", "content": "sys"},
                                        {"role": "user", "content": "hello"}],
        "some_openai_only_field": 1})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Hi! My name is Claude."
    seen = upstream.app.state.received[-1]
    assert seen["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert seen["headers"]["anthropic-version"] == "2023-06-01"
    assert seen["body"]["system"] == "sys" and "some_openai_only_field" not in seen["body"]
    # 2095 x $3/M + 503 x $15/M
    assert float(r.headers["x-switchman-cost-usd"]) == pytest.approx(0.01383, rel=1e-3)


def test_openai_client_through_anthropic_with_tools_and_streaming(gateway) -> None:
    api = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}}}}}]
    messages = [{"role": "user", "content": "weather in SF?"}]
    done = api.chat.completions.create(model="claude", messages=messages, tools=tools)
    assert done.choices[0].message.tool_calls[0].function.name == "get_weather"
    stream = api.chat.completions.create(model="claude", messages=messages, tools=tools,
                                         stream=True)
    arguments = ""
    for chunk in stream:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            arguments += call.function.arguments or ""
    assert json.loads(arguments)["unit"] == "fahrenheit"
    text = api.chat.completions.create(model="claude", messages=messages, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in text if c.choices) == "Hello!"


def test_anthropic_overloaded_falls_back(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json={
        "model": "test/claude", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    assert r.headers["x-switchman-tried"] == "claude-down,claude"
    assert r.headers["x-switchman-reason"] == "fallback after 529 from claude-down"


def test_anthropic_stream_error_event_ends_stream(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json={
        "model": "claude-breaks", "stream": True,
        "messages": [{"role": "user", "content": "hi"}]})
    assert "Partial" in r.text and "Overloaded" in r.text
    # The last event is the error; no [DONE] that would make the partial answer look whole.
    assert "[DONE]" not in r.text
    last = r.text.strip().split("\n\n")[-1]
    assert '"code": "upstream_failed_mid_stream"' in last
