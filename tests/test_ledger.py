"""The budget ledger: reservations never take a period past its budget, however many
callers reserve at once (threads on two clients of one real Redis), and periods reset."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from redis_support import redis_server

from switchman.config.budgets import BudgetConfig
from switchman.ledger import BudgetExhausted, BudgetLedger, PeriodClock, period_bounds
from switchman.state import LocalStore
from switchman.state.redis_store import RedisStore


def _ids(key: str) -> str:
    return "id-" + key


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def test_reserve_settle_and_refusal() -> None:
    budget = BudgetConfig(name="team", usd=1.0, period="total")
    ledger = BudgetLedger([budget], LocalStore(), _ids)
    held = ledger.reserve([budget], 0.8)
    with pytest.raises(BudgetExhausted, match="team"):
        ledger.reserve([budget], 0.3)  # 0.8 is held until settled
    ledger.settle(held, 0.05)  # the answer was short
    ledger.reserve([budget], 0.3)
    status = ledger.status()[0]
    assert status["spent_usd"] == pytest.approx(0.05)
    assert status["reserved_usd"] == pytest.approx(0.3)


def test_all_or_nothing_over_several_budgets() -> None:
    small = BudgetConfig(name="small", usd=0.1)
    large = BudgetConfig(name="large", usd=10.0)
    ledger = BudgetLedger([small, large], LocalStore(), _ids)
    with pytest.raises(BudgetExhausted):
        ledger.reserve([large, small], 0.5)
    assert all(s["reserved_usd"] == 0 for s in ledger.status())  # large was given back


def test_budgets_cover_keys_routers_or_everything() -> None:
    by_key = BudgetConfig(name="k", usd=1, api_keys=["sk-a"])
    by_router = BudgetConfig(name="r", usd=1, routers=["switchman/auto"])
    everything = BudgetConfig(name="all", usd=1)
    ledger = BudgetLedger([by_key, by_router, everything], LocalStore(), _ids)
    assert [b.name for b in ledger.covering("id-sk-a", None)] == ["k", "all"]
    assert [b.name for b in ledger.covering("id-sk-b", "switchman/auto")] == ["r", "all"]


def test_periods_start_again_at_utc_boundaries() -> None:
    now = datetime(2026, 12, 31, 23, 30, tzinfo=UTC).timestamp()
    assert period_bounds("hour", now) == ("2026-12-31T23",
                                          datetime(2027, 1, 1, tzinfo=UTC).timestamp())
    assert period_bounds("day", now)[0] == "2026-12-31"
    assert period_bounds("month", now) == ("2026-12", datetime(2027, 1, 1, tzinfo=UTC).timestamp())
    assert period_bounds("total", now) == ("total", None)
    clock = [now]
    budget = BudgetConfig(name="d", usd=1.0, period="day")
    ledger = BudgetLedger([budget], LocalStore(), _ids, clock=lambda: clock[0])
    ledger.reserve([budget], 1.0)
    clock[0] += 3600  # the next day
    ledger.reserve([budget], 1.0)


def test_the_period_clock_gives_period_bounds_of_the_current_time() -> None:
    start = datetime(2026, 12, 31, 22, 59, tzinfo=UTC).timestamp()
    clock = [start]
    periods = PeriodClock(lambda: clock[0])
    for step in (0.0, 30.0, 30.0, 3600.0, -7200.0, 86400.0 * 40):  # on, over, back, far
        clock[0] += step
        for period in ("hour", "day", "month", "total"):
            assert periods(period) == period_bounds(period, clock[0])


def test_concurrent_reservations_on_shared_redis_never_pass_the_budget(redis_url: str) -> None:
    budget = BudgetConfig(name="shared", usd=1.0, period="total")
    ledgers = [BudgetLedger([budget], RedisStore(redis_url, prefix="ledger-test"), _ids)
               for _ in range(2)]
    granted: list[float] = []

    def worker(ledger: BudgetLedger) -> None:
        for _ in range(50):
            try:
                ledger.settle(ledger.reserve([budget], 0.03), 0.02)
                granted.append(0.02)
            except BudgetExhausted:
                pass

    threads = [threading.Thread(target=worker, args=(ledgers[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    status = ledgers[0].status()[0]
    assert status["spent_usd"] == pytest.approx(sum(granted))
    assert sum(granted) <= 1.0 and status["reserved_usd"] == pytest.approx(0, abs=1e-9)
    assert len(granted) >= 48  # it spends up to the budget, not far short of it
