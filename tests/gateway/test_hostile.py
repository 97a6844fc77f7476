"""What one caller must not be able to do to the gateway or to another caller: stop the
decision log, rate or steer another key's responses, get past authentication by load, or
read an upstream key back in any spelling."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import httpx
from gateway_support import UPSTREAM_KEY, gateway_state
from hypothesis import given, settings
from hypothesis import strategies as st

from switchman.gateway.record.decision_log import DecisionLog, DecisionRecord, _json_strings

KEYS = {"a": "sk-tenant-a-0001", "b": "sk-tenant-b-0002", "admin": "sk-admin-0003"}


def _auth(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[name]}"}


def _chat(http: httpx.Client, key: str, **body: Any) -> httpx.Response:
    payload = {"model": "switchman/auto", "messages": [{"role": "user", "content": "hi"}],
               **body}
    return http.post("/v1/chat/completions", json=payload, headers=_auth(key))


def _error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


def _rows(state: Any) -> int:
    state.log.flush()
    with sqlite3.connect(state.log.path) as conn:
        return conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]


def test_bodies_with_lone_surrogates_get_4xx_and_their_rows(make_gateway) -> None:
    lone = "\ud800"
    with make_gateway(log={"store_prompts": True}) as gw, \
            httpx.Client(base_url=gw.url, timeout=30) as http:
        state = gateway_state(gw)
        before = _rows(state)
        bodies = [{"model": lone, "messages": [{"role": "user", "content": "x"}]},
                  {"model": "mid", "messages": [{"role": "user", "content": lone}]},
                  {"model": "mid", "messages": [{"role": "user", "content": "x"}],
                   "switchman": {"conversation_id": lone}}]
        for body in bodies:
            r = http.post("/v1/chat/completions", content=json.dumps(body),
                          headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500 and r.headers["x-switchman-request-id"]
        assert _rows(state) == before + len(bodies)
        assert state.log.alive() and http.get("/healthz").json()["decision_log"] == "running"


def test_the_log_stores_any_text_and_survives_a_bad_row(tmp_path) -> None:
    lone = "\ud800"
    log = DecisionLog(tmp_path / "log.sqlite")
    try:
        log.record(DecisionRecord(request_id="r1", ts=1.0, router=None, requested_model=lone,
                                  model=None, plan=[lone], tried=[], errors=[lone],
                                  reason=lone, status=400, conversation=lone, prompt=lone))
        log.record_feedback("r1", 1.0, "score", lone, None)
        log.record(DecisionRecord(request_id="r2", ts=1.0, router=None, requested_model="m",
                                  model=None, plan=[object()], tried=[], errors=[], reason="",
                                  status=400))  # cannot be serialised: lost, counted
        log.record(DecisionRecord(request_id="r3", ts=1.0, router=None, requested_model="m",
                                  model=None, plan=[], tried=[], errors=[], reason="",
                                  status=200))
        log.flush()
        assert log.alive() and log.dropped == 1
        with sqlite3.connect(log.path) as conn:
            ids = [r[0] for r in conn.execute("SELECT request_id FROM decisions ORDER BY 1")]
            model, prompt = conn.execute(
                "SELECT requested_model, prompt FROM decisions WHERE request_id = 'r1'"
            ).fetchone()
            comment = conn.execute("SELECT comment FROM feedback").fetchone()[0]
        assert ids == ["r1", "r3"]
        assert model == prompt == comment == "\\ud800"
    finally:
        log.close()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(), st.sampled_from(["gpt-4o", 'say "hi"', "a\\b", "\x7f",
                                                      "tab\there", "caf\u00e9", "\ud800"]))))
def test_list_columns_are_the_text_json_dumps_would_write(items: list[str]) -> None:
    assert _json_strings(items) == json.dumps(items)


def test_queued_prompt_text_is_bounded(tmp_path) -> None:
    log = DecisionLog(tmp_path / "log.sqlite", max_prompt_bytes=5)
    try:
        for i, prompt in enumerate(["x" * 6, "y" * 4]):
            log.record(DecisionRecord(request_id=f"r{i}", ts=1.0, router=None,
                                      requested_model="m", model=None, plan=[], tried=[],
                                      errors=[], reason="", status=200, prompt=prompt))
        log.flush()
        with sqlite3.connect(log.path) as conn:
            stored = conn.execute("SELECT request_id, prompt FROM decisions ORDER BY 1")
            assert stored.fetchall() == [("r0", None), ("r1", "yyyy")]  # rows kept, text not
        assert log.prompts_dropped == 1
    finally:
        log.close()


def test_the_owner_of_every_response_is_known_while_queued_recent_or_on_disk(tmp_path) -> None:
    """The in-memory index of response ids is small; a row the writer has not committed yet
    (here: held up by another connection's write lock) must still have an owner, and an id
    evicted from the index is found on disk once written."""
    log = DecisionLog(tmp_path / "log.sqlite", recent=2)
    blocker = sqlite3.connect(log.path, timeout=30, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        for i in range(5):
            log.record(DecisionRecord(request_id=f"r{i}", ts=1.0, router=None,
                                      requested_model="m", model="m", plan=[], tried=[],
                                      errors=[], reason="", status=200, api_key_id=f"k{i % 2}"))
        time.sleep(0.2)  # the writer is waiting on the lock now
        assert [log.owner(f"r{i}") for i in range(5)] == ["k0", "k1", "k0", "k1", "k0"]
        blocker.execute("ROLLBACK")
        log.flush()
        assert [log.owner(f"r{i}") for i in range(5)] == ["k0", "k1", "k0", "k1", "k0"]
        assert log.owner("never-served") is None
    finally:
        blocker.close()
        log.close()


def test_long_client_strings_are_clipped_in_the_log(make_gateway) -> None:
    with make_gateway() as gw, httpx.Client(base_url=gw.url, timeout=30) as http:
        model = "m" * 100_000
        r = http.post("/v1/chat/completions",
                      json={"model": model, "messages": [{"role": "user", "content": "x"}]})
        _error(r, 404)
        state = gateway_state(gw)
        state.log.flush()
        with sqlite3.connect(state.log.path) as conn:
            stored, errors = conn.execute(
                "SELECT requested_model, errors FROM decisions WHERE request_id = ?",
                (r.headers["x-switchman-request-id"],)).fetchone()
        assert len(stored) < 2100 and len(errors) < 2200


def test_feedback_is_bound_to_the_key_that_made_the_response(make_gateway) -> None:
    with make_gateway(auth={"api_keys": [KEYS["a"], KEYS["b"]],
                            "admin_api_keys": [KEYS["admin"]]}) as gw, \
            httpx.Client(base_url=gw.url, timeout=30) as http:
        rid = _chat(http, "a").json()["id"]
        other = http.post("/v1/feedback", json={"id": rid, "score": 0}, headers=_auth("b"))
        assert _error(other, 404)["code"] == "response_not_found"
        own = http.post("/v1/feedback", json={"id": rid, "score": 1}, headers=_auth("a"))
        admin = http.post("/v1/feedback", json={"id": rid, "score": 0.5},
                          headers=_auth("admin"))
        assert own.status_code == 200 and admin.status_code == 200
        state = gateway_state(gw)
        state.log.flush()
        with sqlite3.connect(state.log.path) as conn:
            scores = [r[0] for r in conn.execute(
                "SELECT score FROM feedback WHERE request_id = ? ORDER BY id", (rid,))]
        assert scores == [0.5]  # the admin's rating replaced the owner's


def test_stickiness_is_scoped_by_api_key(make_gateway) -> None:
    with make_gateway(auth={"api_keys": [KEYS["a"], KEYS["b"]]}) as gw, \
            httpx.Client(base_url=gw.url, timeout=30) as http:
        first = _chat(http, "a", model="mid", switchman={"conversation_id": "conv-1"})
        assert first.status_code == 200
        sticky_a = _chat(http, "a", switchman={"conversation_id": "conv-1"})
        sticky_b = _chat(http, "b", switchman={"conversation_id": "conv-1"})
        assert sticky_a.headers["x-switchman-reason"] != "sticky conversation"  # pinned: none
        routed_a = _chat(http, "a", switchman={"conversation_id": "conv-2"})
        again_a = _chat(http, "a", switchman={"conversation_id": "conv-2"})
        again_b = _chat(http, "b", switchman={"conversation_id": "conv-2"})
        assert routed_a.status_code == 200
        assert again_a.headers["x-switchman-reason"] == "sticky conversation"
        assert again_b.headers["x-switchman-reason"] != "sticky conversation"
        assert sticky_b.headers["x-switchman-reason"] != "sticky conversation"


def test_authentication_comes_before_load_shedding(make_gateway) -> None:
    with make_gateway(auth={"api_keys": [KEYS["a"]]}, server={"max_in_flight": 1}) as gw, \
            httpx.Client(base_url=gw.url, timeout=30) as http:
        state = gateway_state(gw)
        before = _rows(state)
        assert state.in_flight.try_acquire()  # the gateway is full
        try:
            anonymous = http.post("/v1/chat/completions", json={"model": "mid", "messages": []})
            assert _error(anonymous, 401)["type"] == "authentication_error"
            assert _error(_chat(http, "a", model="mid"), 429)["code"] == "overloaded"
        finally:
            state.in_flight.release()
        assert _rows(state) == before + 1  # the 429 has a row, the 401 none


def test_echoed_upstream_keys_are_redacted_in_every_spelling(make_gateway, base_config) -> None:
    models = [*base_config["models"],
              {**base_config["models"][2], "name": "leaky-encoded",
               "upstream_model": "echo-key-encoded-401"}]
    with make_gateway(models=models) as gw, httpx.Client(base_url=gw.url, timeout=30) as http:
        r = http.post("/v1/chat/completions", json={
            "model": "leaky-encoded", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 502
        assert r.text.count("[redacted]") == 4
        assert UPSTREAM_KEY.upper() not in r.text.upper()
        state = gateway_state(gw)
        state.log.flush()
        raw = state.log.path.read_bytes() + state.log.path.with_name(
            state.log.path.name + "-wal").read_bytes()
        assert UPSTREAM_KEY.upper().encode() not in raw.upper()
