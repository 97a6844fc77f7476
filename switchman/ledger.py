"""The budget ledger: reserve the most a call can cost before it is made, settle the measured
cost after, so that no budget is exceeded under any concurrency.

Per budget and period the store holds one amount, *committed* = settled spend + open
reservations; a reservation is an atomic "add unless it would pass the budget"
(:meth:`StateStore.add_amount`), so any number of concurrent requests (and gateway
replicas sharing a Redis store) can never commit more than the budget. Settling replaces a
reservation by the measured cost (usually far less: the reservation assumed the longest
answer). Measured spend is kept beside it for reports and pacing.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from switchman.config.budgets import BudgetConfig
from switchman.state import StateStore

_SPACE = "budget"


@dataclass(frozen=True, slots=True)
class Reservation:
    """Dollars held against one budget's period until the call is settled."""

    budget: str
    period: str
    amount: float


class BudgetExhausted(Exception):
    """No reservation fits: the budget (or what is left of it) is spent."""

    def __init__(self, budget: BudgetConfig, committed: float, resets_at: float | None) -> None:
        self.budget, self.committed, self.resets_at = budget, committed, resets_at
        when = ("never (period: total)" if resets_at is None else
                datetime.fromtimestamp(resets_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        super().__init__(f"budget {budget.name!r} of ${budget.usd:g} per {budget.period} is "
                         f"spent (${committed:.6f} spent or reserved); it resets {when}")


def period_bounds(period: str, now: float) -> tuple[str, float | None]:
    """The id of the period ``now`` falls in and when the next one starts (UTC)."""
    t = datetime.fromtimestamp(now, UTC)
    if period == "hour":
        start = t.replace(minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%dT%H"), start.timestamp() + 3600
    if period == "day":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), start.timestamp() + 86400
    if period == "month":
        days = calendar.monthrange(t.year, t.month)[1]
        start = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m"), start.timestamp() + days * 86400
    return "total", None


class PeriodClock:
    """``period_bounds`` of the current time, computed once per period: a gateway asks on
    every request (reserving, settling, pacing), and the datetime arithmetic cost about
    as much as the rest of a reservation."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._known: dict[str, tuple[str, float | None, float]] = {}

    def __call__(self, period: str) -> tuple[str, float | None]:
        now = self._clock()
        known = self._known.get(period)
        if known is not None and known[2] <= now and (known[1] is None or now < known[1]):
            return known[0], known[1]
        name, resets_at = period_bounds(period, now)
        self._known[period] = (name, resets_at, now)  # valid from now until resets_at
        return name, resets_at


class BudgetLedger:
    """The budgets of one gateway (or of several sharing ``store``)."""

    def __init__(self, budgets: Sequence[BudgetConfig], store: StateStore,
                 key_id: Callable[[str], str], clock: Callable[[], float] = time.time) -> None:
        self.budgets = list(budgets)
        self._store = store
        self._periods = PeriodClock(clock)
        self._keys = {b.name: frozenset(key_id(k) for k in b.api_keys) for b in self.budgets}

    def covering(self, api_key_id: str | None, router: str | None) -> list[BudgetConfig]:
        """The budgets a request from ``api_key_id`` through ``router`` counts against."""
        found = []
        for budget in self.budgets:
            if budget.api_keys:
                if api_key_id in self._keys[budget.name]:
                    found.append(budget)
            elif budget.routers:
                if router in budget.routers:
                    found.append(budget)
            else:
                found.append(budget)
        return found

    def _key(self, budget: BudgetConfig, kind: str) -> tuple[str, float | None]:
        period, resets_at = self._periods(budget.period)
        return f"{budget.name}:{period}:{kind}", resets_at

    def reserve(self, budgets: Iterable[BudgetConfig], amount: float) -> list[Reservation]:
        """Hold ``amount`` against every budget in ``budgets``, or against none of them."""
        held: list[Reservation] = []
        for budget in budgets:
            key, resets_at = self._key(budget, "committed")
            if self._store.add_amount(_SPACE, key, amount, limit=budget.usd) is None:
                self.release(held)
                committed = self._store.add_amount(_SPACE, key, 0.0) or 0.0
                raise BudgetExhausted(budget, committed, resets_at)
            held.append(Reservation(budget.name, key, amount))
        return held

    def release(self, reservations: Iterable[Reservation]) -> None:
        """Give reservations back unused (the call was not made, or failed unbilled)."""
        for r in reservations:
            self._store.add_amount(_SPACE, r.period, -r.amount)

    def settle(self, reservations: Iterable[Reservation], cost: float) -> None:
        """Replace each reservation by the call's measured ``cost``."""
        for r in reservations:
            self._store.add_amount(_SPACE, r.period, cost - r.amount)
            self._store.add_amount(_SPACE, r.period.rsplit(":", 1)[0] + ":spent", cost)

    def charge(self, budgets: Iterable[BudgetConfig], cost: float) -> None:
        """Count spend that had no reservation (a budget's ``cheapest`` fallback, or spend
        found in the decision log at start-up)."""
        for budget in budgets:
            for kind in ("committed", "spent"):
                self._store.add_amount(_SPACE, self._key(budget, kind)[0], cost)

    def spent(self, budget: BudgetConfig) -> float:
        """Measured spend of ``budget`` this period."""
        return self._store.add_amount(_SPACE, self._key(budget, "spent")[0], 0.0) or 0.0

    def status(self) -> list[dict[str, float | str | None]]:
        """Per budget: its limit, measured spend and open reservations this period."""
        rows = []
        for budget in self.budgets:
            committed_key, resets_at = self._key(budget, "committed")
            committed = self._store.add_amount(_SPACE, committed_key, 0.0) or 0.0
            spent = self.spent(budget)
            rows.append({"name": budget.name, "usd": budget.usd, "period": budget.period,
                         "spent_usd": spent, "reserved_usd": max(0.0, committed - spent),
                         "resets_at": resets_at})
        return rows

    def period_start(self, budget: BudgetConfig) -> float:
        """When the current period of ``budget`` began (0 for total)."""
        period, resets_at = self._periods(budget.period)
        if resets_at is None:
            return 0.0
        if budget.period == "month":
            return datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC).timestamp()
        return resets_at - (3600 if budget.period == "hour" else 86400)
