"""Relayed stream chunks get switchman's id and model spliced into the upstream's bytes,
and fall back to re-encoding whenever splicing could touch anything else."""

from __future__ import annotations

import json

from switchman.gateway.execute.streaming import _spliced


def _chunk(**fields) -> bytes:
    return json.dumps({"id": "up-1", "object": "chat.completion.chunk", "model": "llama",
                       "choices": [{"index": 0, "delta": {"content": "hi"}}], **fields}).encode()


def test_id_and_model_are_replaced_and_nothing_else() -> None:
    raw = _chunk()
    out = _spliced(raw, ("up-1", "chatcmpl-sw1"), ("llama", "smollm2"))
    assert out is not None
    expected = json.loads(raw) | {"id": "chatcmpl-sw1", "model": "smollm2"}
    assert json.loads(out) == expected


def test_old_values_quoted_inside_content_do_not_match() -> None:
    raw = json.dumps({"id": "up-1", "model": "llama", "choices": [
        {"delta": {"content": 'I am "llama", id "up-1"'}}]}).encode()
    out = _spliced(raw, ("up-1", "new"), ("llama", "pool"))
    assert out is not None
    data = json.loads(out)
    assert data["id"] == "new" and data["model"] == "pool"
    assert data["choices"][0]["delta"]["content"] == 'I am "llama", id "up-1"'


def test_ambiguous_or_missing_values_fall_back() -> None:
    same = json.dumps({"id": "x", "model": "x", "choices": []}).encode()
    assert _spliced(same, ("x", "a"), ("x", "b")) is None
    assert _spliced(_chunk(), (None, "a"), ("llama", "b")) is None
    escaped = b'{"id": "\\u0075p-1", "model": "llama", "choices": []}'  # same id, other bytes
    assert _spliced(escaped, ("up-1", "a"), ("llama", "b")) is None
