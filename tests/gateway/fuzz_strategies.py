"""Hypothesis strategies for hostile gateway requests: a valid request, then a few mutations.

A body that is wrong everywhere stops at the first check and tests nothing else, so bodies
start valid (a real model, well-formed messages, options in range) and then get zero to
three mutations, each putting a hostile value (any JSON, a huge integer, NaN, a lone
surrogate, a value nested past any limit) at one place: a top-level field, a message field,
a tool call, a content part or a routing preference. Roughly a third of the bodies stay
valid and reach the upstream, so routing, stickiness, translation and streaming see the
values that passed validation.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

#: Any text, a good share with lone surrogates (json.dumps writes them as \udXXX escapes).
TEXT = st.text(max_size=20) | st.text(st.characters(categories=["Cs"]) | st.characters(),
                                      min_size=1, max_size=6)
PLAIN = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
HUGE_INTS = st.integers(min_value=10**300, max_value=10**1000) | st.integers().map(
    lambda n: -(10**400) - abs(n))
NUMBERS = (st.integers() | HUGE_INTS | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from([0, 1, 2, -1, 0.5, 1e-320, 1e308, 2**53 + 1, 2**31, 2**63]))
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(TEXT, inner, max_size=4), max_leaves=8)
#: Forwarded-upstream extras that pass every check (finite, valid text, shallow).
CLEAN_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(-1e6, 1e6) | PLAIN,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(PLAIN, inner, max_size=3),
    max_leaves=6)


@st.composite
def nested(draw: st.DrawFn) -> Any:
    """A value nested from a few to over a thousand levels (lists or objects)."""
    depth = draw(st.sampled_from([2, 62, 63, 64, 65, 200, 970, 1200]))
    value: Any = draw(SCALARS)
    as_object = draw(st.booleans())
    for _ in range(depth):
        value = {"k": value} if as_object else [value]
    return value


HOSTILE = st.one_of(JSON, NUMBERS, nested(), TEXT, st.just("x" * 100_000),
                    st.sampled_from([[], {}, "", None, True, [None], {"": ""}]))


def valid_chat(names: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Chat bodies every check accepts, naming one of ``names``."""
    call = st.fixed_dictionaries({"id": st.just("call_1"), "type": st.just("function"),
                                  "function": st.fixed_dictionaries({
                                      "name": st.just("f"),
                                      "arguments": st.just('{"x": 1}')})})
    part = st.one_of(st.fixed_dictionaries({"type": st.just("text"), "text": PLAIN}),
                     st.just({"type": "image_url",
                              "image_url": {"url": "data:image/png;base64,AA"}}))
    message = st.one_of(
        st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "developer"]),
                               "content": PLAIN | st.lists(part, min_size=1, max_size=2)}),
        st.fixed_dictionaries({"role": st.just("assistant"), "content": PLAIN | st.none()},
                              optional={"tool_calls": st.lists(call, min_size=1, max_size=2)}),
        st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": st.just("call_1"),
                               "content": PLAIN}))
    prefs = st.fixed_dictionaries({}, optional={
        "cost_weight": st.floats(0, 1000), "max_cost_usd": st.floats(1e-6, 10),
        "allowed_models": st.lists(st.sampled_from(names), min_size=1, max_size=3),
        "excluded_models": st.lists(st.sampled_from(names), max_size=2),
        "conversation_id": PLAIN, "fallback": st.booleans()})
    return st.fixed_dictionaries(
        {"model": st.sampled_from(names),
         "messages": st.lists(message, min_size=1, max_size=4)},
        optional={
            "stream": st.booleans(),
            "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
            "temperature": st.floats(0, 2), "top_p": st.floats(0, 1),
            "max_tokens": st.integers(1, 4000),
            "tools": st.just([{"type": "function",
                               "function": {"name": "f", "parameters": {"type": "object"}}}]),
            "tool_choice": st.sampled_from(["auto", "required", "none"]),
            "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
            "stop": PLAIN | st.lists(PLAIN, max_size=2),
            "switchman": prefs, "user": PLAIN, "metadata": CLEAN_JSON})


_TOP = ["model", "messages", "stream", "stream_options", "temperature", "top_p",
        "max_tokens", "max_completion_tokens", "tools", "tool_choice", "response_format",
        "stop", "switchman", "user", "n", "seed", "extra"]
_MESSAGE = ["role", "content", "tool_calls", "tool_call_id", "name"]
_PREFS = ["cost_weight", "max_cost_usd", "allowed_models", "excluded_models",
          "conversation_id", "fallback", "unknown"]


def _mutate(draw: st.DrawFn, body: dict[str, Any]) -> None:
    """Put one hostile value at one place of ``body`` (in place)."""
    value = draw(HOSTILE)
    where = draw(st.sampled_from(["top", "message", "call", "part", "prefs"]))
    messages = body.get("messages")
    message = draw(st.sampled_from(messages)) if isinstance(messages, list) and messages \
        else None
    if where == "message" and isinstance(message, dict):
        message[draw(st.sampled_from(_MESSAGE))] = value
    elif where == "call" and isinstance(message, dict):
        call = {"id": "call_1", "type": "function",
                "function": {"name": "f", "arguments": "{}"}}
        key = draw(st.sampled_from(["id", "type", "function", "function.name",
                                    "function.arguments", "call"]))
        if key == "call":
            call = value
        elif key.startswith("function."):
            call["function"][key[9:]] = value
        else:
            call[key] = value
        message.update(role="assistant", tool_calls=[call])
    elif where == "part" and isinstance(message, dict):
        part = draw(st.sampled_from([{"type": "text", "text": "x"},
                                     {"type": "image_url", "image_url": {"url": "u"}}]))
        part[draw(st.sampled_from(sorted(part)))] = value
        message["content"] = [part]
    elif where == "prefs" and isinstance(body.get("switchman", {}), dict):
        body.setdefault("switchman", {})[draw(st.sampled_from(_PREFS))] = value
    else:
        body[draw(st.sampled_from(_TOP))] = value


@st.composite
def chat_bodies(draw: st.DrawFn, names: tuple[str, ...]) -> dict[str, Any]:
    """A valid chat body after 0 to 3 hostile mutations (0 about a third of the time)."""
    body = draw(valid_chat(names))
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
        _mutate(draw, body)
    return body


#: x-switchman-* headers; values as bytes, since h11 takes any visible latin-1 byte.
PREF_HEADERS = st.dictionaries(
    st.sampled_from(["x-switchman-cost-weight", "x-switchman-max-cost-usd",
                     "x-switchman-allowed-models", "x-switchman-excluded-models",
                     "x-switchman-conversation-id", "x-switchman-fallback"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
            max_size=30).map(lambda s: s.strip().encode("latin-1"))
    | st.sampled_from([b"1e400", b"nan", b"-inf", b"9" * 500, b"0.5", b"true", b"mid",
                       b"cheap,mid", b"", "\xe9t\xe9".encode("latin-1")]), max_size=2)


def dumps(body: Any) -> bytes:
    """JSON as a careless client writes it: NaN and Infinity as their JS literals."""
    return json.dumps(body).encode()


def raw_bodies(names: tuple[str, ...]) -> st.SearchStrategy[bytes]:
    """Bytes that are not JSON, or JSON that Python's encoder would never write."""
    return st.one_of(
        st.binary(max_size=64),
        st.sampled_from([
            b"[" * 970 + b"]" * 970,
            b'{"model": "mid", "messages": ' + b"[" * 990 + b"]" * 990 + b"}",
            b'{"model": "mid", "messages": [{"role": "user", "content": "hi"}], '
            b'"temperature": 1e400}',
            b'{"model": NaN}', b"\xef\xbb\xbf{}", b'{"a": "\\ud800"}', b'"\\udfff"',
            b'{"model": "mid", "messages": [{"role": "user", "content": "hi"}], "top_p": '
            + b"9" * 5000 + b"}",
            b'{"model": "mid", "messages": [{"role": "user", "content": "hi"}], "top_p": '
            + b"9" * 400 + b"}",
            b'{"model": "mid", "model": 5, "messages": []}', b"{" * 20, b"null", b"1e999"]),
        chat_bodies(names).map(dumps).flatmap(
            lambda raw: st.integers(0, len(raw)).map(lambda n: raw[:n])))


def feedback_bodies(response_ids: list[str]) -> st.SearchStrategy[Any]:
    """Feedback on real responses, then mutated like chat bodies (or any JSON at all)."""

    @st.composite
    def mutated(draw: st.DrawFn) -> dict[str, Any]:
        body: dict[str, Any] = {"id": draw(st.sampled_from(response_ids))}
        body.update(draw(st.sampled_from([{"score": 0.5}, {"score": 1}, {"thumbs": "up"},
                                          {"thumbs": "down", "comment": "meh"}])))
        for _ in range(draw(st.sampled_from([0, 1, 1, 2]))):
            key = draw(st.sampled_from(["id", "response_id", "score", "thumbs", "comment"]))
            body[key] = draw(HOSTILE | st.text(min_size=250, max_size=300))
        return body

    return mutated() | JSON
