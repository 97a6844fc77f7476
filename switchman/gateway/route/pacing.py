"""Budget pacing in the gateway: the cost weight rises before a budget runs out.

Enforcement (the ledger's reservations) guarantees a budget is never exceeded; pacing makes
it last. Per budget with a period, a :class:`switchman.budgets.BudgetPacer` (the dual
pacing ``switchman replay`` measures) plans on the requests the period still holds:
seconds left times the recent request rate (an exponentially weighted count). A routed
request's cost weight is the largest of its own and its budgets' paced weights; after the
decision, its chosen model's expected cost and its per-model estimates are fed back, and
each pacer solves the weight that would have kept its recent requests at the spend rate
the rest of the period allows. A ``total`` budget has no period to spread
over, so it is enforced but not paced. Pacers are this process's own; the spend they read
is the shared ledger's.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from switchman.budgets import BudgetPacer
from switchman.config.budgets import BudgetConfig
from switchman.ledger import BudgetLedger, PeriodClock
from switchman.state import StoreUnavailable

logger = logging.getLogger(__name__)

#: Seconds over which the request-rate estimate forgets (half of its weight).
RATE_HALFLIFE_S = 60.0
#: A budget's weight is re-solved every this many of its requests (after its first 20).
#: Each solve is a bisection over the 256-request window (~0.3 ms): every 10th request, as
#: a replay solves, took ~8% of a learning router's CPU at 2,000 requests/s (py-spy), and
#: a budget spread over an hour or more gains nothing from re-planning that often.
RESOLVE_EVERY = 64


class _Rate:
    """Requests per second, exponentially weighted."""

    def __init__(self, now: float) -> None:
        self.weight, self.at, self.since = 0.0, now, now

    def tick(self, now: float) -> float:
        decay = math.exp(-math.log(2) * (now - self.at) / RATE_HALFLIFE_S)
        self.weight, self.at = self.weight * decay + 1.0, now
        window = min(now - self.since, RATE_HALFLIFE_S / math.log(2))
        return self.weight / max(window, 1.0)


class Pacing:
    """The pacers of every periodic budget."""

    def __init__(self, ledger: BudgetLedger, clock: Callable[[], float] = time.time) -> None:
        self._ledger = ledger
        self._clock = clock
        self._periods = PeriodClock(clock)
        now = clock()
        self._pacers = {b.name: BudgetPacer(b.usd, resolve_every=RESOLVE_EVERY)
                        for b in ledger.budgets if b.period != "total"}
        self._rates = {name: _Rate(now) for name in self._pacers}

    def _plan(self, budget: BudgetConfig) -> tuple[float, float]:
        """(spent this period, requests it still holds) for one budget."""
        now = self._clock()
        _, resets_at = self._periods(budget.period)
        remaining = self._rates[budget.name].tick(now) * max((resets_at or now) - now, 0.0)
        return self._ledger.spent(budget), remaining

    def weight(self, budgets: Sequence[BudgetConfig], own: float) -> tuple[float, list]:
        """The paced cost weight for a request covered by ``budgets`` (at least ``own``),
        and what :meth:`record` needs afterwards."""
        plans = []
        for budget in budgets:
            pacer = self._pacers.get(budget.name)
            if pacer is None:
                continue
            try:
                spent, remaining = self._plan(budget)
            except StoreUnavailable as exc:
                logger.warning("budget %s not paced: ledger unreachable (%s)", budget.name, exc)
                continue
            own = max(own, pacer.cost_weight_for(spent, remaining))
            plans.append((pacer, spent, remaining))
        return own, plans

    @staticmethod
    def record(plans: list, expected_cost: float, quality: np.ndarray, cost: np.ndarray,
               eligible: np.ndarray) -> None:
        """Feed the chosen model's expected cost back to the pacers that weighed in, with
        the request's per-model estimates and eligibility: a pacer solves its weight on
        recent requests' estimates (as ``switchman replay`` does) instead of stepping it."""
        for pacer, spent, remaining in plans:
            pacer.record_spend(expected_cost, spent, remaining, quality, cost, eligible)
