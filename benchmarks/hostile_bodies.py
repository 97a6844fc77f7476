"""Seeded generator of hostile chat and feedback requests for benchmarks/hostile_input.py.

A second fuzzer beside the hypothesis strategies of tests/gateway/fuzz_strategies.py, built
on ``random.Random`` so that a seed names a run exactly and any count is cheap: each body
starts valid and gets mutations (a hostile value at one place, or damage to the encoded
bytes), and a share stays valid so that routing, the upstream call and streaming are
reached too.
"""

from __future__ import annotations

import json
import random
from typing import Any

_TOP = ["model", "messages", "stream", "stream_options", "temperature", "top_p",
        "max_tokens", "max_completion_tokens", "tools", "tool_choice", "response_format",
        "stop", "switchman", "user", "n", "seed", "logprobs", "extra"]
_MESSAGE = ["role", "content", "tool_calls", "tool_call_id", "name"]
_PREFS = ["cost_weight", "max_cost_usd", "allowed_models", "excluded_models",
          "conversation_id", "fallback", "unknown"]
_HEADERS = ["x-switchman-cost-weight", "x-switchman-max-cost-usd",
            "x-switchman-allowed-models", "x-switchman-excluded-models",
            "x-switchman-conversation-id", "x-switchman-fallback"]
_WORDS = ["hello", "what", "is", "2+2", "explain", "naïve", "日本語", "emoji 🎉", "tab\t",
          "quote\"", "back\\slash", "nul\x00", ""]


class HostileBodies:
    """``chat()`` and ``feedback(ids)`` request bodies (bytes) and headers, from one seed."""

    def __init__(self, seed: int, names: list[str]) -> None:
        self.rnd = random.Random(seed)
        self.names = names

    # --- values -------------------------------------------------------------------------

    def text(self) -> str:
        r = self.rnd
        return " ".join(r.choice(_WORDS) for _ in range(r.randint(1, 6)))

    def surrogate(self) -> str:
        return self.text() + chr(self.rnd.randint(0xD800, 0xDFFF)) + self.text()

    def huge_int(self) -> int:
        digits = self.rnd.randint(300, 1200)
        return self.rnd.choice([1, -1]) * int("9" * digits)

    def nested(self) -> Any:
        r = self.rnd
        depth = r.choice([10, 63, 64, 65, 100, 500, 960, 970, 990, 1500])
        value: Any = r.choice([1, "x", None])
        for _ in range(depth):
            value = [value] if r.random() < 0.5 else {"k": value}
        return value

    def hostile(self) -> Any:
        """One value that some check somewhere must refuse (or that must pass harmlessly)."""
        r = self.rnd
        kind = r.randrange(16)
        if kind == 0:
            return self.huge_int()
        if kind == 1:
            return r.choice([float("nan"), float("inf"), float("-inf")])
        if kind == 2:
            return self.surrogate()
        if kind == 3:
            return self.nested()
        if kind == 4:
            return "x" * r.choice([257, 5000, 300_000])
        if kind == 5:
            return [r.randint(0, 9)] * r.choice([10_001, 12_000])
        if kind == 6:
            return {self.surrogate(): 1}
        if kind == 7:
            return {f"k{i}": i for i in range(r.choice([3, 10_001]))}
        if kind == 8:
            return r.choice([[], {}, "", None, True, False, 0, -1, 0.0, -0.0, 1e-400])
        if kind == 9:
            return r.choice([2**53 + 1, 2**63, -(2**63) - 1, 2**31, 10**15, 1e308, 5e-324])
        if kind == 10:
            return [self.hostile() for _ in range(r.randint(1, 3))]
        if kind == 11:
            return {"function": r.choice(["abc", 1, None, [], {"name": 5}])}
        if kind == 12:
            return r.choice(["user", "assistant", "system", "tool", "wizard", "USER", " user"])
        if kind == 13:
            return r.choice(self.names) + r.choice(["", " ", "\x00", "/", "ü"])
        if kind == 14:
            return r.uniform(-10, 10)
        return self.text()

    # --- bodies -------------------------------------------------------------------------

    def message(self) -> dict[str, Any]:
        r = self.rnd
        kind = r.randrange(5)
        if kind == 0:
            return {"role": "system", "content": self.text()}
        if kind == 1:
            return {"role": "assistant", "content": None,
                    "tool_calls": [{"id": "call_1", "type": "function",
                                    "function": {"name": "f", "arguments": '{"x": 1}'}}]}
        if kind == 2:
            return {"role": "tool", "tool_call_id": "call_1", "content": self.text()}
        if kind == 3:
            return {"role": "user", "content": [
                {"type": "text", "text": self.text()},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}
        return {"role": "user", "content": self.text()}

    def valid_chat(self) -> dict[str, Any]:
        r = self.rnd
        body: dict[str, Any] = {"model": r.choice(self.names),
                                "messages": [self.message() for _ in range(r.randint(1, 4))]}
        body["messages"][-1] = {"role": "user", "content": self.text()}
        options = {
            "stream": lambda: r.random() < 0.5,
            "stream_options": lambda: {"include_usage": r.random() < 0.5},
            "temperature": lambda: round(r.uniform(0, 2), 3),
            "top_p": lambda: round(r.uniform(0, 1), 3),
            "max_tokens": lambda: r.randint(1, 2000),
            "tools": lambda: [{"type": "function",
                               "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": lambda: r.choice(["auto", "none", "required"]),
            "response_format": lambda: {"type": r.choice(["text", "json_object"])},
            "switchman": lambda: {"cost_weight": r.uniform(0, 1000),
                                  "conversation_id": f"conv-{r.randint(0, 50)}",
                                  "fallback": r.random() < 0.8},
        }
        for key, make in options.items():
            if r.random() < 0.25:
                body[key] = make()
        return body

    def _mutate(self, body: dict[str, Any]) -> None:
        r = self.rnd
        value = self.hostile()
        where = r.randrange(5)
        message = r.choice(body["messages"]) if isinstance(body.get("messages"), list) \
            and body["messages"] and isinstance(body["messages"][0], dict) else None
        if where == 0 and isinstance(message, dict):
            message[r.choice(_MESSAGE)] = value
        elif where == 1 and isinstance(message, dict):
            call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            slot = r.choice(["id", "type", "function", "name", "arguments"])
            (call["function"] if slot in ("name", "arguments") else call)[slot] = value
            message.update(role="assistant", tool_calls=[call if r.random() < 0.8 else value])
        elif where == 2 and isinstance(message, dict):
            message["content"] = [{"type": "text", "text": value} if r.random() < 0.5
                                  else value]
        elif where == 3:
            prefs = body.get("switchman")
            if not isinstance(prefs, dict):
                prefs = body["switchman"] = {}
            prefs[r.choice(_PREFS)] = value
        else:
            body[r.choice(_TOP)] = value

    def _damage(self, raw: bytes) -> bytes:
        """Hurt the encoded bytes where json.dumps would never: cut, flip, bad UTF-8."""
        r = self.rnd
        kind = r.randrange(6)
        if kind == 0:
            return raw[:r.randint(0, len(raw))]
        if kind == 1:
            at = r.randrange(len(raw))
            return raw[:at] + bytes([r.randrange(256)]) + raw[at + 1:]
        if kind == 2:
            return raw.replace(b'"model"', b'"model": "x", "model"', 1)
        if kind == 3:
            return raw[:-1] + b', "top_p": ' + b"9" * r.choice([400, 4301, 5000]) + b"}"
        if kind == 4:
            return b"\xef\xbb\xbf" + raw if r.random() < 0.5 else raw + b"\xff\xfe"
        return r.choice([b"", b"null", b"[]", b'"\\ud800"', b"1e999", b"{" * 2000,
                         b"[" * 100_000 + b"]" * 100_000])

    def chat(self) -> tuple[bytes, dict[str, bytes]]:
        """A chat request body and its x-switchman-* headers."""
        r = self.rnd
        body = self.valid_chat()
        for _ in range(r.choice([0, 0, 1, 1, 1, 2, 3])):
            self._mutate(body)
        raw = json.dumps(body).encode()
        if r.random() < 0.1:
            raw = self._damage(raw)
        headers: dict[str, bytes] = {}
        if r.random() < 0.15:
            value = r.choice([b"1e400", b"nan", b"-1", b"9" * 500, b"0.5", b"yes", b"maybe",
                              b"mid,nope", b"", "caf\xe9".encode("latin-1"), b"x" * 300])
            headers[r.choice(_HEADERS)] = value
        return raw, headers

    def feedback(self, ids: list[str]) -> bytes:
        """A feedback body: on a real response (``ids``), then perhaps mutated."""
        r = self.rnd
        body: dict[str, Any] = {"id": r.choice(ids) if ids else "chatcmpl-none"}
        body.update(r.choice([{"score": r.random()}, {"score": 1}, {"thumbs": "up"},
                              {"thumbs": "down", "comment": self.text()}]))
        for _ in range(r.choice([0, 1, 1, 2])):
            body[r.choice(["id", "response_id", "score", "thumbs", "comment"])] = \
                self.hostile()
        raw = json.dumps(body).encode()
        if r.random() < 0.1:
            raw = self._damage(raw)
        return raw
