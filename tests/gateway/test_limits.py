"""The inputs that gave 500s (issue 14) each get a 400 naming the place, over HTTP; numbers
are range-checked before arithmetic; bodies are bounded in depth and size; client strings
come back in error messages cut to ``MAX_ECHO`` characters."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from switchman.gateway.schema import MAX_DEPTH, MAX_ECHO, MAX_ITEMS, MAX_VALUES, echo

HI = [{"role": "user", "content": "hi"}]
HUGE = int("9" * 400)


def _post(client: httpx.Client, path: str, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(path, content=content,
                       headers={"content-type": "application/json", **headers})


def _error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text[:500]
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


def _deep_raw(depth: int) -> bytes:
    """A chat body whose ``extra`` is nested ``depth`` deep (too deep for json.dumps here)."""
    return (b'{"model": "mid", "messages": [{"role": "user", "content": "hi"}], "extra": '
            + b"[" * depth + b"1" + b"]" * depth + b"}")


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "mid", "messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
    ({"model": "mid", "messages": [{"role": {"a": 1}, "content": "x"}]}, "messages[0].role"),
    ({"model": "mid", "messages": [*HI, {"role": "assistant", "tool_calls": [
        {"function": "abc"}]}]}, "messages[1].tool_calls[0].function"),
    ({"model": "mid", "messages": [*HI, {"role": "assistant", "tool_calls": [
        {"function": {"name": "f", "arguments": {"x": 1}}}]}]},
     "messages[1].tool_calls[0].function.arguments"),
    ({"model": "mid", "messages": [*HI, {"role": "assistant", "tool_calls": ["x"]}]},
     "messages[1].tool_calls[0]"),
    ({"model": "mid", "messages": [{"role": "tool", "tool_call_id": {"a": 1},
                                    "content": "x"}]}, "messages[0].tool_call_id"),
    ({"model": "mid", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": 5}]}]}, "messages[0].content[0].image_url"),
    ({"model": "claude", "messages": HI, "stop": 5}, "stop"),
    ({"model": "claude", "messages": HI, "tools": [{"type": "function", "function": "x"}]},
     "tools[0].function"),
    ({"model": "mid", "messages": HI, "tools": [{"function": {"name": "f",
                                                               "parameters": []}}]},
     "tools[0].function.parameters"),
    ({"model": "mid", "messages": HI, "temperature": HUGE}, "temperature"),
    ({"model": "mid", "messages": HI, "top_p": -HUGE}, "top_p"),
    ({"model": "mid", "messages": HI, "max_tokens": HUGE}, "max_tokens"),
    ({"model": "mid", "messages": HI, "switchman": {"cost_weight": HUGE}},
     "switchman.cost_weight"),
    ({"model": "mid", "messages": HI, "switchman": {"cost_weight": 1e300}},
     "switchman.cost_weight"),
    ({"model": "mid", "messages": HI, "switchman": {"max_cost_usd": HUGE}},
     "switchman.max_cost_usd"),
    ({"model": "mid", "messages": HI, "temperature": float("nan")}, "temperature"),
    ({"model": "mid", "messages": HI, "extra": float("inf")}, "extra"),
    ({"model": "mid", "messages": HI, "extra": {"a": [1, "\ud800"]}}, "extra.a[1]"),
    (_deep_raw(970), None),
    ({"model": "mid", "messages": HI, "extra": list(range(MAX_ITEMS + 1))}, "extra"),
])
def test_inputs_that_gave_500s_are_400s_naming_the_place(
        client: httpx.Client, body: dict | bytes, param: str | None) -> None:
    err = _error(_post(client, "/v1/chat/completions", body), 400)
    if param is not None:
        assert err["param"] == param, err
    else:
        assert err["code"] == "too_deeply_nested" and err["param"].startswith("extra[0]")


def test_bounds_are_exact(make_gateway) -> None:
    """Up to each limit passes, one past it is a 400 (the body object is the first level)."""
    per_list = MAX_ITEMS // 2
    lists = MAX_VALUES // (per_list + 1)
    bodies = {
        "too_deeply_nested": (_deep(MAX_DEPTH - 1), _deep(MAX_DEPTH)),
        "too_many_items": ([0] * MAX_ITEMS, [0] * (MAX_ITEMS + 1)),
        "too_many_values": ([[0] * per_list] * (lists - 1), [[0] * per_list] * (lists + 1)),
    }
    with make_gateway(server={"max_body_bytes": 4 * MAX_VALUES}) as gw, \
            httpx.Client(base_url=gw.url, timeout=30) as http:
        for code, (ok, over) in bodies.items():
            r = _post(http, "/v1/chat/completions", {"model": "mid", "messages": HI, "x": ok})
            assert r.status_code == 200, r.text[:300]
            r = _post(http, "/v1/chat/completions", {"model": "mid", "messages": HI, "x": over})
            assert _error(r, 400)["code"] == code


@pytest.mark.parametrize(("header", "value"), [
    ("x-switchman-cost-weight", "9" * 500), ("x-switchman-cost-weight", "1e400"),
    ("x-switchman-cost-weight", "nan"), ("x-switchman-max-cost-usd", "-inf"),
    ("x-switchman-fallback", "x" * 5000), ("x-switchman-allowed-models", "y" * 5000),
])
def test_bad_preference_headers_are_400s_with_short_messages(
        client: httpx.Client, header: str, value: str) -> None:
    err = _error(_post(client, "/v1/chat/completions", {"model": "mid", "messages": HI},
                       **{header: value}), 400)
    assert err["param"] == header and len(err["message"]) < 3 * MAX_ECHO + 300


def test_a_long_model_name_is_not_echoed_whole(client: httpx.Client) -> None:
    err = _error(_post(client, "/v1/chat/completions",
                       {"model": "m" * 150_000, "messages": HI}), 404)
    assert err["code"] == "model_not_found" and "(150000 characters)" in err["message"]
    assert len(err["message"]) < 1000


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"id": "chatcmpl-x", "score": HUGE}, 400, "score"),
    ({"id": "chatcmpl-x", "score": -HUGE}, 400, "score"),
    ({"id": "chatcmpl-x", "score": float("nan")}, 400, "score"),
    ({"id": "\ud800", "score": 1}, 400, "id"),
    ({"id": "chatcmpl-x", "score": 1, "comment": "\udfff"}, 400, "comment"),
    ({"id": "x" * 300, "score": 1}, 400, "id"),
    ({"id": ["chatcmpl-x"], "score": 1}, 400, "id"),
    ({"id": "chatcmpl-unknown", "score": 1}, 404, "id"),
])
def test_feedback_bodies_that_gave_500s(client: httpx.Client, body: dict, status: int,
                                        param: str) -> None:
    err = _error(_post(client, "/v1/feedback", body), status)
    assert err["param"] == param and len(err["message"]) < 1000


def test_echo_bounds_what_it_quotes() -> None:
    assert echo("abc") == "'abc'"
    assert echo("x" * 10_000).endswith("... (10000 characters)")
    assert len(echo("x" * 10_000)) < MAX_ECHO + 40
    assert echo(HUGE) == "an integer of 400 digits"
    assert echo([1] * 10_000) == "a list of 10000 item(s)"
    assert echo({"a": 1}) == "an object with 1 member(s)"
    assert echo(None) == "None" and echo(0.5) == "0.5"
