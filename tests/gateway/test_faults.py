"""Each upstream failure kind, streaming and not, against the fault upstream (a separate
process): the exact status, body, headers, reason, upstream attempts and log row."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fault_support import FaultServer, fault_config, log_rows, sse_events
from gateway_support import gateway_state, running_gateway
from gateway_upstream import ServerThread

P, B, S = "ok@primary", "ok@backup", "ok@solo"


@pytest.fixture(scope="module")
def gw(fault_upstream: FaultServer, tmp_path_factory: pytest.TempPathFactory,
       test_env: None) -> Iterator[ServerThread]:
    path = tmp_path_factory.mktemp("faults") / "decisions.sqlite"
    with running_gateway(fault_config(fault_upstream.url, path)) as server:
        yield server


@pytest.fixture()
def http(gw: ServerThread, faults: FaultServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        yield client


def ask(http: httpx.Client, model: str, stream: bool = False, **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", {})
    body = {"model": model, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}], **extra}
    return http.post("/v1/chat/completions", json=body, headers=headers)


def timed_ask(http: httpx.Client, model: str,
              stream: bool = False) -> tuple[httpx.Response, float]:
    """The answer and how many seconds it took."""
    t0 = time.perf_counter()
    r = ask(http, model, stream)
    return r, time.perf_counter() - t0


def only_row(gw: ServerThread, r: httpx.Response) -> dict[str, Any]:
    rows = log_rows(gateway_state(gw), r.headers["x-switchman-request-id"])
    assert len(rows) == 1
    return rows[0]


def answer_of(r: httpx.Response, stream: bool) -> str:
    if not stream:
        return r.json()["choices"][0]["message"]["content"]
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1]
                   if isinstance(e, dict) and e.get("choices"))


BOTH = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])


@BOTH
@pytest.mark.parametrize("fault", ["status-500", "status-502", "status-503", "status-504",
                                   "status-408", "status-429", "close"])
def test_transient_failure_is_retried_on_the_same_model(gw, http, faults, stream, fault):
    faults.script(S, fault, fault)
    r = ask(http, "solo", stream)
    assert r.status_code == 200, r.text
    assert answer_of(r, stream) == f"answer from {S}"
    assert faults.calls(S) == 3
    assert r.headers["x-switchman-model"] == "solo"
    assert r.headers["x-switchman-reason"] == "pinned by request"
    row = only_row(gw, r)
    assert row["status"] == 200 and row["tried"] == ["solo"]
    label = "disconnected" if fault == "close" else fault.split("-")[1]
    assert [e.split(": ")[1] for e in row["errors"]] == [label, label]
    assert all("retried after" in e for e in row["errors"])


@BOTH
def test_retries_exhausted_fall_back_along_the_pinned_chain(gw, http, faults, stream):
    faults.script(P, "status-503", "status-503", "status-503")
    r = ask(http, "primary", stream)
    assert r.status_code == 200, r.text
    assert answer_of(r, stream) == f"answer from {B}"
    assert faults.calls(P) == 3 and faults.calls(B) == 1
    assert r.headers["x-switchman-model"] == "backup"
    assert r.headers["x-switchman-reason"] == "fallback after 503 from primary"
    assert r.headers["x-switchman-tried"] == "primary,backup"
    row = only_row(gw, r)
    assert row["plan"] == ["primary", "backup"] and row["model"] == "backup"
    assert row["reason"] == "fallback after 503 from primary"
    assert len(row["errors"]) == 3 and row["errors"][-1] == "primary: 503: injected 503"


def test_routed_request_falls_back_along_the_plan(gw, http, faults):
    faults.script(P, "status-500", "status-500", "status-500")
    faults.script(B, "status-502", "status-502", "status-502")
    r = ask(http, "test/chain")
    assert r.status_code == 200, r.text
    assert r.headers["x-switchman-model"] == "third"
    assert r.headers["x-switchman-reason"] == "fallback after 502 from backup"
    assert only_row(gw, r)["tried"] == ["primary", "backup", "third"]


@BOTH
def test_retry_after_is_honoured(gw, http, faults, stream):
    faults.script(S, "status-429-ra-0.4")
    r, elapsed = timed_ask(http, "solo", stream)
    assert r.status_code == 200, r.text
    assert elapsed >= 0.4
    assert faults.calls(S) == 2
    assert "retried after 0.40s" in only_row(gw, r)["errors"][0]


def test_retry_after_beyond_the_cap_falls_back_at_once(gw, http, faults):
    faults.script(P, "status-429-ra-30")
    r, elapsed = timed_ask(http, "primary")
    assert r.status_code == 200
    assert elapsed < 1
    assert faults.calls(P) == 1
    assert r.headers["x-switchman-reason"] == "fallback after 429 from primary"


@BOTH
@pytest.mark.parametrize("status", [400, 422])
def test_request_errors_are_neither_retried_nor_passed_on(gw, http, faults, stream, status):
    faults.script(P, f"status-{status}")
    r = ask(http, "primary", stream)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == "upstream_rejected"
    assert err["message"] == (f"upstream model primary rejected the request ({status}): "
                              f"injected {status}")
    assert faults.calls(P) == 1 and faults.calls(B) == 0
    row = only_row(gw, r)
    assert row["status"] == status and row["error_kind"] == "upstream_rejected"
    assert row["tried"] == ["primary"]


@BOTH
@pytest.mark.parametrize("status", [401, 403, 404])
def test_model_errors_are_not_retried_but_fall_back(gw, http, faults, stream, status):
    faults.script(P, f"status-{status}")
    r = ask(http, "primary", stream)
    assert r.status_code == 200
    assert faults.calls(P) == 1 and faults.calls(B) == 1
    assert r.headers["x-switchman-reason"] == f"fallback after {status} from primary"


@BOTH
def test_hang_times_out_and_falls_back(gw, http, faults, stream):
    faults.script(P, "hang")
    r, elapsed = timed_ask(http, "primary", stream)
    assert r.status_code == 200, r.text
    assert 0.5 <= elapsed < 2.5
    assert faults.calls(P) == 1  # a hang is not retried: it would double the wait
    assert r.headers["x-switchman-reason"] == "fallback after timeout from primary"
    row = only_row(gw, r)
    assert row["errors"] == [f"primary: timeout: no response from 127.0.0.1:"
                             f"{faults.port} within 0.5s"]


@BOTH
def test_malformed_answer_falls_back(gw, http, faults, stream):
    faults.script(P, "malformed")
    r = ask(http, "primary", stream)
    assert r.status_code == 200, r.text
    assert answer_of(r, stream) == f"answer from {B}"
    assert faults.calls(P) == 1
    assert r.headers["x-switchman-reason"] == "fallback after 502 from primary"
    assert "invalid" in only_row(gw, r)["errors"][0]


def test_body_cut_short_is_retried(gw, http, faults):
    faults.script(S, "cut-0")
    r = ask(http, "solo")
    assert r.status_code == 200 and faults.calls(S) == 2
    assert only_row(gw, r)["errors"][0].startswith("solo: disconnected: ")


def test_stream_cut_before_first_chunk_falls_back(gw, http, faults):
    faults.script(P, "cut-0", "cut-0", "cut-0")
    r = ask(http, "primary", True)
    assert r.status_code == 200
    assert answer_of(r, True) == f"answer from {B}"
    assert r.headers["x-switchman-reason"] == "fallback after disconnected from primary"


def test_stream_cut_after_bytes_ends_with_error_event(gw, http, faults):
    faults.script(S, "cut-3")
    r = ask(http, "solo", True)
    assert r.status_code == 200  # the status line left with the first byte
    events = sse_events(r.text)
    assert "[DONE]" not in events
    assert [e["choices"][0]["delta"].get("content") for e in events[:-1]] == \
        ["", "answer", " from"]
    err = events[-1]["error"]
    assert err["code"] == "upstream_failed_mid_stream"
    assert err["type"] == "upstream_error"
    assert err["message"].startswith("upstream model solo failed mid-stream after 3 chunks "
                                     "(disconnected)")
    row = only_row(gw, r)
    assert row["status"] == 502 and row["error_kind"] == "disconnected"
    assert row["model"] == "solo" and "after 3 chunks" in row["errors"][-1]
    metrics = http.get("/metrics").text
    assert 'switchman_stream_incidents_total{error="disconnected",model="solo"}' in metrics


def test_stream_ended_without_done_is_not_an_answer(gw, http, faults):
    faults.script(S, "malformed")
    r = ask(http, "solo", True)
    assert r.status_code == 502  # before the first chunk: a normal error, nothing was sent
    assert r.json()["error"]["code"] == "upstream_failed"


@pytest.mark.parametrize("how", ["body", "header"])
def test_request_can_forbid_fallback(gw, http, faults, how):
    faults.script(P, "status-503", "status-503", "status-503")
    extra: dict[str, Any] = ({"switchman": {"fallback": False}} if how == "body"
                             else {"headers": {"x-switchman-fallback": "false"}})
    r = ask(http, "primary", **extra)
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "upstream_failed"
    assert err["message"].startswith("no model could answer: primary: 503: injected 503")
    assert r.headers["x-switchman-tried"] == "primary"
    assert faults.calls(P) == 3 and faults.calls(B) == 0
    row = only_row(gw, r)
    assert row["plan"] == ["primary"] and row["status"] == 502


def test_invalid_fallback_preference_is_a_400(http):
    r = ask(http, "primary", headers={"x-switchman-fallback": "maybe"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "x-switchman-fallback"


def test_everything_failing_names_every_failure(gw, http, faults):
    faults.script(P, "status-503", "status-503", "status-503")
    faults.script(B, "hang")
    r = ask(http, "primary")
    assert r.status_code == 502
    message = r.json()["error"]["message"]
    assert "primary: 503: injected 503" in message and "backup: timeout:" in message
    assert only_row(gw, r)["tried"] == ["primary", "backup"]
