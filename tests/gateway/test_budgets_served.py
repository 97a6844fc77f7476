"""Budgets through a real gateway: refused with 429 once spent, or answered by the cheapest
model; never exceeded under concurrent requests; restored from the log after a restart.

The test upstream bills every answer as 100 prompt + 20 completion tokens, so ``mid``
(1 and 2 USD per million) costs 1.4e-4 per request. The prompt below is 40 bytes, so a
request with ``max_tokens: 20`` reserves 40 + 4 (framing) + 64 (template) prompt tokens
and 20 output tokens' worth (1.48e-4 on mid, 1.48e-5 on cheap) before the call: never
less than what it is billed.
"""

from __future__ import annotations

import asyncio
import sqlite3

import httpx
import pytest
from gateway_support import gateway_state

BODY = {"model": "mid", "messages": [{"role": "user", "content": "x " * 20}], "max_tokens": 20}
COST = 1.4e-4


def _spent(state) -> float:
    state.log.flush()
    with sqlite3.connect(state.log.path) as conn:
        return conn.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM decisions").fetchone()[0]


def test_a_spent_budget_refuses_with_what_was_spent_and_when_it_resets(make_gateway) -> None:
    budget = {"name": "team", "usd": 4e-4, "period": "day"}
    with make_gateway(budgets=[budget]) as gw, httpx.Client(base_url=gw.url) as http:
        statuses = [http.post("/v1/chat/completions", json=BODY) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        err = statuses[2].json()["error"]
        assert err["code"] == "budget_exceeded" and err["type"] == "rate_limit_error"
        assert "team" in err["message"] and "resets 20" in err["message"]
        assert "$0.000280" in err["message"]  # what was spent
        assert int(statuses[2].headers["retry-after"]) > 0
        status = http.get("/v1/status").json()["budgets"][0]
        assert status["spent_usd"] == pytest.approx(2 * COST)
        assert status["reserved_usd"] == pytest.approx(0, abs=1e-12)


def test_an_exhausted_budget_can_fall_back_to_the_cheapest_model(make_gateway) -> None:
    budget = {"name": "team", "usd": 3e-4, "on_exhausted": "cheapest", "period": "total",
              "routers": ["switchman/auto"]}  # total: enforced, not paced
    with make_gateway(budgets=[budget]) as gw, httpx.Client(base_url=gw.url) as http:
        routed = {**BODY, "model": "switchman/auto",
                  "switchman": {"allowed_models": ["mid", "cheap"], "cost_weight": 0}}
        answers = [http.post("/v1/chat/completions", json=routed) for _ in range(20)]
        assert all(r.status_code == 200 for r in answers)
        reasons = [r.headers["x-switchman-reason"] for r in answers]
        assert answers[0].headers["x-switchman-model"] == "mid"
        # mid's worst case stops fitting first; cheap's fits a little longer; then nothing
        # fits and the cheapest model answers unreserved.
        assert "fallback after budget_exceeded from mid" in reasons
        assert answers[-1].headers["x-switchman-model"] == "cheap"
        assert reasons[-1] == "cheapest: budget spent (team)"


def test_concurrent_requests_never_pass_the_budget(make_gateway) -> None:
    budget = {"name": "all", "usd": 10 * COST, "period": "total"}
    with make_gateway(budgets=[budget]) as gw:
        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as http:
                rs = await asyncio.gather(*(http.post("/v1/chat/completions", json=BODY)
                                            for _ in range(60)))
            return [r.status_code for r in rs]

        statuses = asyncio.run(burst())
        assert set(statuses) <= {200, 429} and statuses.count(200) >= 5
        assert _spent(gateway_state(gw)) <= 10 * COST + 1e-12


def test_a_restart_keeps_what_the_period_spent(make_gateway) -> None:
    budget = {"name": "team", "usd": 4e-4, "period": "month"}
    with make_gateway(budgets=[budget]) as gw, httpx.Client(base_url=gw.url) as http:
        assert http.post("/v1/chat/completions", json=BODY).status_code == 200
        assert http.post("/v1/chat/completions", json=BODY).status_code == 200
    with make_gateway(budgets=[budget]) as gw, httpx.Client(base_url=gw.url) as http:
        assert http.post("/v1/chat/completions", json=BODY).status_code == 429


def test_a_periodic_budget_paces_the_cost_weight_up(make_gateway) -> None:
    routed = {**BODY, "model": "switchman/auto",
              "switchman": {"allowed_models": ["mid", "cheap"], "cost_weight": 0}}
    with make_gateway() as gw, httpx.Client(base_url=gw.url) as http:
        unpaced = http.post("/v1/chat/completions", json=routed)
        assert unpaced.headers["x-switchman-model"] == "mid"  # cost_weight 0: best quality
    budget = {"name": "day", "usd": 0.01, "period": "day", "routers": ["switchman/auto"]}
    with make_gateway(budgets=[budget]) as gw, httpx.Client(base_url=gw.url) as http:
        answers = [http.post("/v1/chat/completions", json=routed) for _ in range(10)]
        # A cent a day at this request rate buys about nothing per request: pacing raises
        # the weight from the caller's 0 so that the cheaper model answers.
        assert answers[-1].headers["x-switchman-model"] == "cheap"
        assert "cost_weight=0)" not in answers[-1].headers["x-switchman-reason"]
        assert _spent(gateway_state(gw)) <= 0.01
